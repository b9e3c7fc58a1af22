"""Rates and token buckets: what a ``Budget`` in ``welcome`` describes, in one place.

A bucket holds up to ``burst`` tokens and regains ``per_second`` of them each second; a call
costs one. When empty, the caller learns how long until the next token. The server's shield
limits callers with these (``pigeon.shield.ratelimit``) and the SDK paces itself with the
same arithmetic (``pigeon.client.throttle``), so both sides agree on what the budget allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Rate:
    """``burst`` calls at once, then ``count`` per ``seconds``; written as ``"5/1h burst 3"``."""

    count: float
    seconds: float
    burst: float

    # Cached: every bucket's take asks for it, several times per message on each side.
    @cached_property
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
