"""Limits on login codes and sign-ins (docs/shield.md, "Login codes").

* per client address: code requests and sign-ins (``code_rate_address``);
* by SMS: per number (``code_rate_phone``), then the adaptive budgets per country calling
  code and in all (``codebudget.py``), which keep a share for calls with solved proof of work;
* in the app (to the account's logged-in devices): per number and requesting network
  (``code_rate_app``), so that one network cannot spend another's, and more loosely per
  number (``code_rate_app_phone``), so that many networks together cannot flood someone's
  devices.

Limits per address and per number belong to the messenger itself and hold even with the
shield off; the budgets are the shield's. The budgets' learned baselines are kept in
``DATA/code-budgets.json`` across restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pigeon.protocol.errors import ProofOfWorkRequired, RateLimited

from .admission import prefix_of
from .codebudget import AdaptiveBudget, Refusal
from .pow import ProofOfWork
from .ratelimit import Rate
from .state import Limiter, MemoryShieldState, ShieldState

__all__ = ["BUDGETS_FILE", "LoginLimits"]

log = logging.getLogger("pigeon.shield")

BUDGETS_FILE = "code-budgets.json"  # learned SMS baselines, in the data directory
SAVE_EVERY = 60  # seconds between saves of the baselines


class LoginLimits:
    def __init__(self, settings: Any, *, enabled: bool, pow: ProofOfWork,
                 refuse: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 state: ShieldState | None = None) -> None:
        self.enabled = enabled
        self._pow = pow
        self._refuse = refuse

        held: ShieldState = state if state is not None else MemoryShieldState(clock=clock)

        def limiter(name: str, setting: str) -> Limiter:
            return held.limiter(name, Rate.parse(setting))

        def budget(name: str, setting: str) -> AdaptiveBudget:
            return held.budget(name, lambda: AdaptiveBudget(
                Rate.parse(setting), factor=settings.code_budget_factor,
                halflife=settings.code_budget_halflife, open_share=settings.code_budget_open,
                clock=clock))

        self.per_address = limiter("code_address", settings.code_rate_address)
        self.sms_per_phone = limiter("code_phone", settings.code_rate_phone)
        self.app_per_network = limiter("code_app_network", settings.code_rate_app)
        self.app_per_phone = limiter("code_app_phone", settings.code_rate_app_phone)
        self.budgets = {"country": budget("code_country", settings.code_rate_country),
                        "global": budget("code_global", settings.code_rate_global)}
        data = getattr(settings, "data", None)
        self._path = Path(data) / BUDGETS_FILE if data is not None and enabled else None
        self._saving: asyncio.Task[None] | None = None
        self._seconds = 0

    def check_address(self, address: str) -> None:
        """Code requests and sign-ins from one address."""
        wait = self.per_address.take(address)
        if wait:
            raise RateLimited(f"too many login attempts; try again in {wait:.0f} s",
                              retry_after=round(wait, 1))

    def check_sms(self, phone: str, country_code: int, proven: bool) -> None:
        """A code by SMS: the budgets per country and in all (a code-pumping flood aimed at
        one country cannot spend the codes the rest of the world needs), then the limit per
        number. Raises POW_REQUIRED when only the share of the budgets kept for calls with
        solved work is left, RATE_LIMITED when none is. Nothing is spent unless every check
        passes."""
        keys = ((self.budgets["country"], str(country_code)), (self.budgets["global"], "all"))
        if self.enabled:
            refusals = [r for b, k in keys if (r := b.check(k, proven)) is not None]
            if refusals:
                self._refuse("code_budget")
                self._budget_refusal(refusals)
        wait = self.sms_per_phone.take(phone)
        if wait:
            raise RateLimited(f"too many codes sent to this number; try again in {wait:.0f} s, "
                              "or log in with a code sent to your other devices",
                              retry_after=round(wait, 1))
        if self.enabled:
            for b, k in keys:
                b.spend(k, proven)

    def _budget_refusal(self, refusals: list[Refusal]) -> None:
        if all(r.proof for r in refusals):
            self._pow.rejected["POW_REQUIRED"] += 1
            raise ProofOfWorkRequired("many login codes are being requested: solve "
                                      "auth.challenge and send the solution", code="POW_REQUIRED")
        wait = max(r.wait for r in refusals if not r.proof)
        raise RateLimited(f"too many login codes requested; retry in {wait:.0f} s",
                          retry_after=round(wait, 1))

    def check_app(self, phone: str, address: str) -> None:
        """A code delivered in the app: per number and requesting network, then per number."""
        wait = (self.app_per_network.take(f"{phone} {prefix_of(address)}")
                or self.app_per_phone.take(phone))
        if wait:
            raise RateLimited(f"too many codes sent to this account's devices; try again in "
                              f"{wait:.0f} s, or ask for an SMS", retry_after=round(wait, 1))

    def status(self) -> dict[str, Any]:
        return {name: b.status() for name, b in self.budgets.items()}

    # -- the baselines across restarts -------------------------------------------------------
    async def load(self) -> None:
        if self._path is not None:
            saved = await asyncio.to_thread(_read_json, self._path)
            for name, budget in self.budgets.items():
                if isinstance(saved.get(name), dict):
                    budget.restore(saved[name])

    async def save(self) -> None:
        """Write the learned baselines, so a restart does not forget normal traffic (after a
        background save still running: the last word is this one's)."""
        if self._saving is not None and not self._saving.done():
            await asyncio.wait([self._saving])
        await self._write()

    async def _write(self) -> None:
        # The background save runs this, not save(): save() waiting for the background save
        # (itself) never ended, and a stop then waited out its bound on the shield (3 s).
        if self._path is not None:
            doc = {name: b.export() for name, b in self.budgets.items()}
            try:
                await asyncio.to_thread(_write_json, self._path, doc)
            except OSError as exc:
                log.warning("cannot save the login-code baselines: %s", exc)

    def tick(self) -> None:
        """Once a second (the shield's ticker): now and then, save in the background."""
        self._seconds += 1
        if self._seconds % SAVE_EVERY == 0 and self._path is not None and (
                self._saving is None or self._saving.done()):
            self._saving = asyncio.ensure_future(self._write())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
