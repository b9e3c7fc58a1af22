"""Before the run: register every account the siege needs and open their chats.

Accounts are made over raw connections (:class:`.rawws.Rpc`), 32 at once, each from a
setup address of its own: ten thousand sign-ups take seconds, not minutes. Codes are read where the
server writes them (its stderr, or a log file of it). Rate limits are waited out and proof
of work is solved, so the same code works against a shielded server given as ``--server``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pigeon.testing import CODE_LINE

from .addresses import setup_address
from .rawws import CallFailed, Closed, Refused, Rpc

LANES = 32  # setup connections working at once


class CodeSource(Protocol):
    async def get(self, phone: str, timeout: float = 10.0) -> str: ...


class ServerCodes:
    """Codes from a :class:`pigeon.testing.ServerProcess`'s stderr, polled without threads."""

    def __init__(self, server: Any) -> None:
        self.server = server

    async def get(self, phone: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                code: str = self.server.code_for(phone, timeout=0)
                return code
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"no login code for {phone} in the server's log") from None
            await asyncio.sleep(0.02)


class LogFileCodes:
    """Codes from a file the server's stderr goes to (``pigeon serve 2> server.log``)."""


    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._codes: dict[str, str] = {}

    def _scan(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # only whole lines
        self._offset += end
        for m in CODE_LINE.finditer(data[:end].decode("utf-8", "replace")):
            self._codes[m[1]] = m[2]

    async def get(self, phone: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            self._scan()
            if phone in self._codes:
                return self._codes.pop(phone)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no login code for {phone} in {self.path}")
            await asyncio.sleep(0.05)


@dataclass
class Account:
    phone: str
    user_id: int
    token: str


@dataclass
class Fixture:
    users: list[Account] = field(default_factory=list)        # 2 per pair, pair p = 2p, 2p+1
    chats: list[int] = field(default_factory=list)            # the private chat of pair p
    idle: list[Account] = field(default_factory=list)         # reconnect mode's extra devices
    spammers: list[Account] = field(default_factory=list)
    victims: list[Account] = field(default_factory=list)      # offline; the spam lands here
    spam_chats: list[list[int]] = field(default_factory=list)  # per spammer, one per victim

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Where each kind of account starts in the sequence of numbers (mobile_number): the kinds
# never share a number (idle devices up to 20,000, sign-ups up to 60,000).
_FIRST = {"user": 0, "idle": 10_000, "spammer": 30_000, "victim": 31_000, "signup": 32_000,
          "newcomer": 100_000}


def phone(kind: str, index: int) -> str:
    """Distinct valid mobile numbers per kind of account, from ten countries in turn: a
    shielded server's SMS budgets are per country, as a real server's users are spread."""
    return mobile_number(_FIRST[kind] + index)


# People come from many countries (a server's users do, and one country's budget for login
# codes is not the world's): mobile numbers of these regions, in turn.
NEWCOMER_REGIONS = ("DE", "GB", "FR", "NL", "ES", "IT", "PL", "IN", "BR", "US")


def newcomer_phone(index: int) -> str:
    return phone("newcomer", index)


def mobile_number(index: int) -> str:
    """The index-th of a sequence of distinct valid mobile numbers (below 1,000,000)."""
    import phonenumbers

    region = NEWCOMER_REGIONS[index % len(NEWCOMER_REGIONS)]
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    digits = str(example.national_number)
    serial = index // len(NEWCOMER_REGIONS)
    for step in range(1000):
        tail = f"{(serial * 7919 + step * 104729 + 11) % 100_000:05d}"
        number = phonenumbers.parse(f"+{example.country_code}{digits[:-5]}{tail}")
        if phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise ValueError(f"no valid mobile number for newcomer {index} in {region}")


async def solve_pow(rpc: Rpc) -> dict[str, Any]:
    """Ask for a challenge and solve it, as the SDK does (when this Pigeon has PoW)."""
    from pigeon.protocol.pow import solve

    challenge = await rpc.call("auth.challenge", {})
    nonce = await asyncio.to_thread(solve, challenge["token"], challenge["difficulty"])
    return {"token": challenge["token"], "nonce": nonce}


async def patient_call(rpc: Rpc, method: str, params: dict[str, Any], deadline: float) -> Any:
    """A call that waits out rate limits and overload and solves proof of work."""
    while True:
        try:
            return await rpc.call(method, params)
        except CallFailed as exc:
            now = time.monotonic()
            if exc.code in ("RATE_LIMITED", "OVERLOADED", "UNAVAILABLE") and now < deadline:
                wait = min(exc.retry_after or 1.0, deadline - now)
                await asyncio.sleep(wait * random.uniform(1.0, 1.2))
            elif exc.code in ("POW_REQUIRED", "POW_INVALID") and now < deadline:
                params = {**params, "pow": await solve_pow(rpc)}
            else:
                raise


class Registrar:
    """Runs setup jobs ``LANES`` at a time, each on a connection of its own from an address
    of its own (so per-address limits of a shielded ``--server`` do not pile up)."""

    def __init__(self, host: str, port: int, codes: CodeSource, deadline: float,
                 progress: Callable[[int, int], None] | None = None, bind: bool = True) -> None:
        self.host, self.port, self.codes, self.deadline = host, port, codes, deadline
        self.bind = bind
        self.progress = progress
        self.done = 0
        self.total = 0
        self._addresses = itertools.count()

    async def _lane(self, jobs: asyncio.Queue[Any]) -> None:
        while True:
            try:
                job = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            for attempt in range(3):
                address = setup_address(next(self._addresses)) if self.bind else None
                try:
                    rpc = await Rpc.open(self.host, self.port, address)
                except Refused:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.5)
                    continue
                try:
                    await job(rpc)
                    break
                except Closed:
                    if attempt == 2:
                        raise
                finally:
                    rpc.close()

    async def run(self, jobs: list[Callable[[Rpc], Any]]) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        lanes = [asyncio.create_task(self._lane(queue)) for _ in range(min(LANES, len(jobs)))]
        try:
            await asyncio.gather(*lanes)
        finally:
            for lane in lanes:
                lane.cancel()

    async def sign_up(self, rpc: Rpc, number: str, name: str) -> Account:
        sent = await patient_call(rpc, "auth.send_code", {"phone": number}, self.deadline)
        code = await self.codes.get(number, timeout=max(1.0, self.deadline - time.monotonic()))
        auth = await patient_call(rpc, "auth.sign_in", {
            "phone": number, "code_id": sent["code_id"], "code": code, "name": name,
            "device": "siege"}, self.deadline)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)
        return Account(number, int(auth["user"]["id"]), str(auth["token"]))


async def build_fixture(host: str, port: int, codes: CodeSource, *, pairs: int, idle: int,
                        spammers: int, victims: int, timeout: float, bind: bool = True,
                        progress: Callable[[int, int], None] | None = None) -> Fixture:
    """Register everything; raises (CallFailed, TimeoutError, Refused) if the server will not."""
    reg = Registrar(host, port, codes, time.monotonic() + timeout, progress, bind)
    reg.total = 2 * pairs + idle + spammers + victims
    fx = Fixture(users=[None] * (2 * pairs), chats=[0] * pairs,  # type: ignore[list-item]
                 idle=[None] * idle, victims=[None] * victims,  # type: ignore[list-item]
                 spammers=[None] * spammers, spam_chats=[[] for _ in range(spammers)])  # type: ignore[list-item]

    def pair_job(p: int) -> Callable[[Rpc], Any]:
        async def job(rpc: Rpc) -> None:
            a = fx.users[2 * p] or await reg.sign_up(rpc, phone("user", 2 * p), f"User {2 * p}")
            fx.users[2 * p] = a
            b = await reg.sign_up(rpc, phone("user", 2 * p + 1), f"User {2 * p + 1}")
            fx.users[2 * p + 1] = b  # the lane is now logged in as b
            chat = await patient_call(rpc, "chats.open_private", {"user_id": a.user_id},
                                      reg.deadline)
            fx.chats[p] = int(chat["id"])
        return job

    def one_job(kind: str, into: list[Account], i: int) -> Callable[[Rpc], Any]:
        async def job(rpc: Rpc) -> None:
            into[i] = await reg.sign_up(rpc, phone(kind, i), f"{kind.title()} {i}")
        return job

    def spammer_job(i: int) -> Callable[[Rpc], Any]:
        async def job(rpc: Rpc) -> None:
            fx.spammers[i] = await reg.sign_up(rpc, phone("spammer", i), f"Spammer {i}")
            fx.spam_chats[i] = [int((await patient_call(
                rpc, "chats.open_private", {"user_id": v.user_id}, reg.deadline))["id"])
                for v in fx.victims]
        return job

    await reg.run([pair_job(p) for p in range(pairs)]
                  + [one_job("victim", fx.victims, i) for i in range(victims)]
                  + [one_job("idle", fx.idle, i) for i in range(idle)])
    if spammers:
        await reg.run([spammer_job(i) for i in range(spammers)])
    return fx
