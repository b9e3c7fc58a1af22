"""Token buckets, one per key, with a clock that tests can replace.

A bucket holds up to ``burst`` tokens and regains ``per_second`` of them each second; a call
costs one. When empty, the caller learns how long until the next token: that becomes the
``retry_after`` of the RATE_LIMITED error the client sees.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from pigeon.protocol.buckets import Rate, TokenBucket

Clock = Callable[[], float]

__all__ = ["Clock", "KeyedLimiter", "Rate", "TokenBucket"]


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
        # A known key's bucket is looked up here rather than through _bucket: this runs
        # several times for every call a server serves (bench/send_throughput.py).
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(self.rate, now, cost)

    def charge(self, key: str, cost: float) -> None:
        """:meth:`TokenBucket.charge` on this key's bucket."""
        now = self.clock()
        self._bucket(key, now).charge(self.rate, now, cost)

    def _bucket(self, key: str, now: float) -> TokenBucket:
        """This key's bucket (full when new), now the most recently used; the least recently
        used is forgotten past ``max_keys``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)
