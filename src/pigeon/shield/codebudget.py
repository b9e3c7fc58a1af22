"""Budgets for login codes sent by SMS that learn what normal traffic is.

Every code sent by SMS costs the operator money, and SMS pumping (toll fraud) turns that into
an attack: a flood of code requests for numbers whose carriers pay the attacker a share. A
fixed limit is either too low for a busy day or too high to matter, so each budget (one per
country calling code, and one for all) learns its normal rate and allows a multiple of it::

    allowed per minute = max(floor, factor x baseline)

``baseline`` is an exponentially weighted moving average of the codes this budget granted
per minute, with a slow half-life (a day by default). Whatever an attacker does, a budget
grants at most ``allowed`` a minute (plus a burst), and to raise it he must keep spending it
for a long time: sustained at the cap, the allowance doubles only every
``halflife / (factor - 1)`` (12 hours by default), in plain sight of the operator's metrics.

Each budget is two token buckets:

* the **total** bucket refills at the allowed rate and holds a small burst (the floor's burst,
  scaled up as the allowance grows);
* the **open** bucket holds ``open_share`` of that: requests that come without proof of work
  may only spend this part. When it is empty such a request is told to prove work (the caller
  answers POW_REQUIRED), while requests with a solved challenge spend the rest. A flood that
  does not solve challenges therefore gets at most the open share, and people who do solve
  them still get codes while it lasts.

Pure and clock-driven (``clock`` is replaceable); :meth:`AdaptiveBudget.export` and
:meth:`AdaptiveBudget.restore` carry the learned baselines across a restart.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .ratelimit import Rate

__all__ = ["AdaptiveBudget", "Refusal"]

Clock = Callable[[], float]
MINUTE = 60.0


@dataclass(frozen=True)
class Refusal:
    """Why a code was not granted: ``wait`` seconds until one would be; ``proof`` is True
    when a request with proof of work would have been granted now."""

    wait: float
    proof: bool


class _State:
    __slots__ = ("baseline", "count", "minute", "open_stamp", "open_tokens", "stamp", "tokens")

    def __init__(self, baseline: float, minute: int, burst: float, open_burst: float,
                 now: float) -> None:
        self.baseline = baseline      # codes per minute, the slow average
        self.minute = minute          # the minute being counted
        self.count = 0                # codes granted in that minute
        self.tokens = burst
        self.stamp = now
        self.open_tokens = open_burst
        self.open_stamp = now


class AdaptiveBudget:
    """Per-key adaptive budgets; see the module docstring."""

    def __init__(self, floor: Rate, *, factor: float = 3.0, halflife: float = 86400.0,
                 open_share: float = 0.25, clock: Clock = time.monotonic,
                 max_keys: int = 4096) -> None:
        if factor < 1.0 or halflife <= 0 or not 0.0 < open_share <= 1.0:
            raise ValueError("need factor >= 1, halflife > 0 and 0 < open_share <= 1")
        self.floor = floor
        self.factor = factor
        self.halflife = halflife
        self.open_share = open_share
        self.clock = clock
        self.max_keys = max_keys
        # The weight of one minute in the average: after ``halflife`` seconds of minutes, an
        # old rate counts half.
        self._keep = 0.5 ** (MINUTE / halflife)
        self._floor_per_minute = floor.per_second * MINUTE
        self._keys: OrderedDict[str, _State] = OrderedDict()
        # Told of every code granted here: a shared shield state spreads it to the other
        # workers, whose budgets then count it too (shared.py).
        self.on_spend: Callable[[str, bool], None] | None = None

    # -- the allowance ---------------------------------------------------------------------
    def per_minute(self, key: str) -> float:
        """Codes a minute this key may be granted now."""
        state = self._keys.get(key)
        baseline = self._roll(state, self.clock()) if state else 0.0
        return max(self._floor_per_minute, self.factor * baseline)

    def _shape(self, baseline: float) -> tuple[float, float, float, float]:
        """(rate per second, burst, open rate per second, open burst) for a baseline."""
        per_minute = max(self._floor_per_minute, self.factor * baseline)
        scale = per_minute / self._floor_per_minute
        rate, burst = per_minute / MINUTE, self.floor.burst * scale
        return (rate, burst, rate * self.open_share, max(1.0, burst * self.open_share))

    # -- asking and spending ---------------------------------------------------------------
    def check(self, key: str, proven: bool) -> Refusal | None:
        """Would one code be granted now? None if so. Changes nothing but the refill."""
        state = self._state(key)
        now = self.clock()
        rate, burst, open_rate, open_burst = self._shape(self._roll(state, now))
        self._refill(state, now, rate, burst, open_rate, open_burst)
        if state.tokens < 1.0:
            return Refusal((1.0 - state.tokens) / rate, proof=False)
        if not proven and state.open_tokens < 1.0:
            return Refusal((1.0 - state.open_tokens) / open_rate, proof=True)
        return None

    def spend(self, key: str, proven: bool) -> None:
        """Count one code granted (call after :meth:`check` said yes)."""
        self.record(key, proven)
        if self.on_spend is not None:
            self.on_spend(key, proven)

    def record(self, key: str, proven: bool) -> None:
        """Count one code granted here or, told by a shared state, by another worker."""
        state = self._state(key)
        state.tokens -= 1.0
        if not proven:
            state.open_tokens -= 1.0
        state.count += 1

    def take(self, key: str, proven: bool) -> Refusal | None:
        """check() and, if granted, spend()."""
        refusal = self.check(key, proven)
        if refusal is None:
            self.spend(key, proven)
        return refusal

    # -- persistence and status ------------------------------------------------------------
    def export(self) -> dict[str, float]:
        """The learned baselines (codes per minute), to save."""
        now = self.clock()
        out = {key: self._roll(state, now) for key, state in self._keys.items()}
        return {k: round(v, 6) for k, v in out.items() if v > 1e-6}

    def restore(self, baselines: dict[str, float]) -> None:
        """Start from saved baselines (keys already in use keep what they learned)."""
        for key, value in baselines.items():
            if (key not in self._keys and isinstance(value, (int, float))
                    and math.isfinite(value) and value > 0):
                self._state(key, float(value))

    def status(self) -> dict[str, dict[str, float]]:
        now = self.clock()
        out = {}
        for key, state in self._keys.items():
            baseline = self._roll(state, now)
            rate, burst, open_rate, open_burst = self._shape(baseline)
            self._refill(state, now, rate, burst, open_rate, open_burst)
            out[key] = {"baseline_per_minute": round(baseline, 3),
                        "allowed_per_minute": round(rate * MINUTE, 3),
                        "tokens": round(state.tokens, 2),
                        "open_tokens": round(state.open_tokens, 2)}
        return out

    # -- internals -------------------------------------------------------------------------
    def _state(self, key: str, baseline: float = 0.0) -> _State:
        state = self._keys.get(key)
        if state is not None:
            self._keys.move_to_end(key)
            return state
        now = self.clock()
        _, burst, _, open_burst = self._shape(baseline)
        state = _State(baseline, int(now // MINUTE), burst, open_burst, now)
        self._keys[key] = state
        if len(self._keys) > self.max_keys:
            # Forgetting a key forgets its baseline (it falls back to the floor): the keys
            # are country codes, a few hundred at most, so this only bounds junk.
            self._keys.popitem(last=False)
        return state

    def _roll(self, state: _State, now: float) -> float:
        """Fold finished minutes into the baseline; returns it."""
        minute = int(now // MINUTE)
        if minute > state.minute:
            keep = self._keep
            state.baseline = keep * state.baseline + (1.0 - keep) * state.count
            idle = minute - state.minute - 1  # whole minutes with nothing granted
            if idle:
                state.baseline *= keep ** min(idle, 10**7)
            state.minute, state.count = minute, 0
        return state.baseline

    @staticmethod
    def _refill(state: _State, now: float, rate: float, burst: float, open_rate: float,
                open_burst: float) -> None:
        elapsed = max(0.0, now - state.stamp)
        state.tokens = min(burst, state.tokens + elapsed * rate)
        state.stamp = now
        elapsed = max(0.0, now - state.open_stamp)
        state.open_tokens = min(open_burst, state.open_tokens + elapsed * open_rate)
        state.open_stamp = now
