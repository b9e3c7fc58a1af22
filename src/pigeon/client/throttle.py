"""Client-side pacing and adaptive throttling.

Adaptive throttling, from Google's SRE book ("Handling Overload"):

    reject locally with probability  max(0, (requests - K * accepts) / (requests + 1))

over a sliding window. While the server accepts everything the probability is 0; when it
starts shedding load (OVERLOADED), the client sends less by itself, so a crowd of
clients does not turn an overload into a retry storm. K = 2 lets twice as many requests
through as are being accepted, so the client still notices quickly when the server recovers.

Pacing (:class:`CallPacer`): the client stays within the call budget the server announces,
so an honest client is never refused for rate, not even when it resends every pending call
after a reconnect.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

from pigeon.protocol import limits
from pigeon.protocol.types import Budget
from pigeon.protocol.buckets import Rate, TokenBucket


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


#: After a going-away notice, a device with a call waiting whose connect finds nothing
#: listening (the restart is not done yet) tries again within this many seconds, for up to
#: RESTART_POLL_FOR seconds after the notice's window opened: a refused connect costs the
#: server nothing (its kernel answers), and the user's sends wait for exactly this (issue 13).
RESTART_POLL, RESTART_POLL_FOR = 0.2, 30.0


def waiting_backoff(attempt: int, cap: float, restarting: bool,
                    rng: random.Random | None = None) -> float:
    """How long a device whose user waits on a call sleeps before its next reconnect try:
    full jitter within ``cap`` (a short one), or, while an announced restart is not done yet
    (``restarting``: the last try found nothing listening), a short poll: a backoff grown
    over a few refused tries would leave the user's sends waiting up to ``cap`` past the
    server's return."""
    if restarting:
        return RESTART_POLL * (rng or random).uniform(0.5, 1.0)
    return backoff(attempt, cap=cap, rng=rng)


def hinted_wait(retry_after: float | None, rng: random.Random | None = None) -> float:
    """How long to wait when the server said ``retry_after``: at least that, plus up to a
    fifth more, so that devices refused together do not all come back in one wave."""
    after = min(max(retry_after or 0.0, 0.0), limits.MAX_RETRY_SECONDS)
    return after * (rng or random).uniform(1.0, 1.2)


def notice_wait(retry_after: float | None, retry_spread: float | None,
                rng: random.Random | None = None) -> float:
    """How long a going-away notice asks a device to stay away: ``retry_after`` plus its own
    pick in [0, ``retry_spread``], each at most ``MAX_RETRY_SECONDS`` (issue 13). Each device
    picking its own moment is what turns a restart's herd into a steady stream."""
    after = min(retry_after or 0.0, limits.MAX_RETRY_SECONDS)
    return after + (rng or random).uniform(0, min(retry_spread or 0.0, limits.MAX_RETRY_SECONDS))


def outage_wait(window: float | None, rng: random.Random | None = None) -> float:
    """How long a device that lost its server without a word, and failed its first attempt
    to come back, waits: its own pick in [0, ``window``] (the welcome's
    ``reconnect_window``, sized to the devices the server serves). A crash warns nobody, so
    the devices spread themselves as a going-away notice would have had them (issue 13)."""
    return (rng or random).uniform(0, min(max(window or 0.0, 0.0), limits.MAX_RETRY_SECONDS))


# Methods the server also counts against the account's send budget (rate_send).
SEND_METHODS = frozenset({"messages.send", "messages.forward"})


class CallPacer:
    """Keeps a client inside the budget the server announces in ``welcome`` (issue 7,
    finding 12: a fresh client that fired 40 calls at once, and resent them all at every
    reconnect, got its own address banned).

    At most ``window`` calls are in flight; each call takes a token from the calls bucket and
    each send one from the sends bucket as well, waiting for it rather than being refused.
    Until a server says otherwise, the shield's documented defaults apply (docs/shield.md).
    The buckets keep ``SAFETY`` of the budget in reserve and start half full: the session's
    budget on the server may still be partly spent by this device's previous connection.
    A RATE_LIMITED answer pauses every call for its ``retry_after``.
    """

    SAFETY = 0.9
    DEFAULT = Budget(calls_per_second=50.0, call_burst=100, sends_per_second=5.0, send_burst=30)
    # Before login a connection may send 10 frames a second, 20 at once
    # (frame_rate_unauthenticated); the hello is one of them.
    UNAUTHENTICATED = Rate(count=8.0, seconds=1.0, burst=16.0)

    def __init__(self, window: int = 32, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.clock = clock
        self._sleep = sleep
        self.window = window
        self._in_flight = 0
        self._released: asyncio.Event | None = None
        self._paused_until = 0.0
        self.calls = self.sends = self.UNAUTHENTICATED  # replaced by configure()
        self._calls = TokenBucket(0.0, clock())
        self._sends = TokenBucket(0.0, clock())
        self._anonymous = TokenBucket(self.UNAUTHENTICATED.burst, clock())
        self.configure(self.DEFAULT, fresh=True)

    def configure(self, budget: Budget | None, fresh: bool = False) -> None:
        """Adopt the budget a server announced. None (a server that announces none: an
        older one, or one with its shield off) leaves the documented defaults in force."""
        if budget is None:
            return
        self.calls = self._rate(budget.calls_per_second, budget.call_burst)
        self.sends = self._rate(budget.sends_per_second, budget.send_burst)
        for bucket, rate in ((self._calls, self.calls), (self._sends, self.sends)):
            bucket.tokens = rate.burst / 2 if fresh else min(bucket.tokens, rate.burst)

    def _rate(self, per_second: float, burst: int) -> Rate:
        return Rate(count=max(per_second * self.SAFETY, 0.1), seconds=1.0,
                    burst=max(1.0, float(int(burst * self.SAFETY))))

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def slot(self, method: str, authenticated: bool) -> _Slot:
        """``async with pacer.slot(method, authenticated):`` around one call."""
        return _Slot(self, method, authenticated)

    def _release(self) -> None:
        self._in_flight -= 1
        if self._released is not None:
            self._released.set()

    async def _acquire(self, method: str, authenticated: bool) -> None:
        while True:
            now = self.clock()
            wait = self._paused_until - now
            if wait <= 0 and self._in_flight >= self.window:
                if self._released is None:
                    self._released = asyncio.Event()
                self._released.clear()
                await self._released.wait()
                continue
            if wait <= 0:
                wait = self._take(method, authenticated, now)
                if wait <= 0:
                    self._in_flight += 1
                    return
            # At least a couple of milliseconds: a bucket short of a token by a rounding
            # error must not make us spin.
            await self._sleep(max(wait, 0.002))

    def _take(self, method: str, authenticated: bool, now: float) -> float:
        if not authenticated:
            return self._anonymous.take(self.UNAUTHENTICATED, now)
        wait = self._calls.take(self.calls, now)
        if wait == 0.0 and method in SEND_METHODS:
            wait = self._sends.take(self.sends, now)
            if wait:
                self._calls.tokens += 1.0  # not sent after all: give the call token back
        return wait


class _Slot:
    """One call's place in the pacer. A plain class rather than an
    ``asynccontextmanager``: it is entered on every call, and the generator machinery cost
    the SDK a measurable share of its per-call time (bench/send_throughput.py)."""

    __slots__ = ("_pacer", "_method", "_authenticated")

    def __init__(self, pacer: CallPacer, method: str, authenticated: bool) -> None:
        self._pacer = pacer
        self._method = method
        self._authenticated = authenticated

    async def __aenter__(self) -> None:
        await self._pacer._acquire(self._method, self._authenticated)

    async def __aexit__(self, *exc_info: object) -> None:
        self._pacer._release()
