"""Token buckets, one per key, with a clock that tests can replace.

A bucket holds up to ``burst`` tokens and regains ``per_second`` of them each second; a call
costs one. When empty, the caller learns how long until the next token: that becomes the
``retry_after`` of the RATE_LIMITED error the client sees.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Rate:
    """``burst`` calls at once, then ``count`` per ``seconds``; written as ``"5/1h burst 3"``."""

    count: float
    seconds: float
    burst: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = re.fullmatch(
            r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d*(?:\.\d+)?)\s*([smhd])\s*(?:burst\s+(\d+))?\s*", text
        )
        if not match:
            raise ValueError(f"not a rate: {text!r} (expected e.g. '5/1h burst 3' or '10/s')")
        count = float(match[1])
        seconds = float(match[2] or 1) * _UNITS[match[3]]
        burst = float(match[4]) if match[4] else max(count, 1.0)
        if count <= 0 or seconds <= 0 or burst < 1:
            raise ValueError(f"a rate must be positive: {text!r}")
        return cls(count, seconds, burst)


class TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def take(self, rate: Rate, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0.0 on success, else the seconds to wait."""
        self.tokens = min(rate.burst, self.tokens + (now - self.stamp) * rate.per_second)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / rate.per_second

    def charge(self, rate: Rate, now: float, cost: float) -> None:
        """Take ``cost`` tokens even if that leaves the bucket in debt, for work whose cost is
        known only once it is done; a negative cost gives tokens back (up to ``burst``)."""
        self.tokens = min(rate.burst, self.tokens + (now - self.stamp) * rate.per_second - cost)
        self.stamp = now


class KeyedLimiter:
    """A bucket per key, holding at most ``max_keys`` of them (least recently used go first,
    and a forgotten key starts full: memory stays bounded under a flood of distinct keys)."""

    def __init__(self, rate: Rate, max_keys: int = 100_000, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> float:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(self.rate, now, cost)

    def charge(self, key: str, cost: float) -> None:
        """:meth:`TokenBucket.charge` on this key's bucket."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        bucket.charge(self.rate, now, cost)

    def __len__(self) -> int:
        return len(self._buckets)
