"""Client-side adaptive throttling, from Google's SRE book ("Handling Overload"):

    reject locally with probability  max(0, (requests - K * accepts) / (requests + 1))

over a sliding window. While the server accepts everything the probability is 0; when it
starts shedding load (OVERLOADED), the client sends less by itself, so a crowd of
clients does not turn an overload into a retry storm. K = 2 lets twice as many requests
through as are being accepted, so the client still notices quickly when the server recovers.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable


class AdaptiveThrottle:
    def __init__(self, k: float = 2.0, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.k = k
        self.window = window
        self.clock = clock
        self.rng = rng or random.Random()
        self._events: deque[tuple[float, bool]] = deque()  # (when, accepted)
        self.requests = 0
        self.accepts = 0

    def _expire(self) -> None:
        horizon = self.clock() - self.window
        while self._events and self._events[0][0] < horizon:
            _, accepted = self._events.popleft()
            self.requests -= 1
            self.accepts -= accepted

    def rejection_probability(self) -> float:
        self._expire()
        return max(0.0, (self.requests - self.k * self.accepts) / (self.requests + 1))

    def allow(self) -> bool:
        """Ask before sending. A local rejection counts as a request that was not accepted."""
        if self.rng.random() < self.rejection_probability():
            self.record(accepted=False)
            return False
        return True

    def record(self, accepted: bool) -> None:
        self._events.append((self.clock(), accepted))
        self.requests += 1
        self.accepts += accepted


def backoff(attempt: int, base: float = 0.2, cap: float = 30.0,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0, min(cap, base * 2**attempt))
