"""The SDK's adaptive throttle (Google SRE book), backoff and call pacing, with fake clocks."""

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.client.throttle import (
    RESTART_POLL, AdaptiveThrottle, CallPacer, backoff, waiting_backoff,
)
from pigeon.protocol.types import Budget
from pigeon.shield.ratelimit import Rate, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_local_rejection_while_the_server_accepts():
    throttle = AdaptiveThrottle(clock=FakeClock(), rng=random.Random(1))
    for _ in range(1000):
        assert throttle.allow()
        throttle.record(accepted=True)
    assert throttle.rejection_probability() == 0.0


def test_rejects_locally_in_proportion_to_refusals_then_recovers():
    clock = FakeClock()
    throttle = AdaptiveThrottle(k=2.0, window=60.0, clock=clock, rng=random.Random(7))
    for _ in range(100):
        throttle.record(accepted=True)
    for _ in range(300):
        throttle.record(accepted=False)
    # (requests - K * accepts) / (requests + 1) = (400 - 200) / 401
    assert throttle.rejection_probability() == pytest.approx(200 / 401)
    allowed = sum(throttle.allow() for _ in range(2000))
    assert 0 < allowed < 2000  # some sent, many held back
    clock.now += 61.0  # the window forgets the overload
    assert throttle.rejection_probability() == 0.0


def test_backoff_is_full_jitter_and_capped():
    rng = random.Random(3)
    for attempt in range(12):
        delays = [backoff(attempt, base=0.2, cap=30.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= min(30.0, 0.2 * 2**attempt) for d in delays)
    assert max(backoff(20, rng=rng) for _ in range(200)) <= 30.0


# -- the pacer (issue 7, finding 12) --------------------------------------------------------
class FakeTime(FakeClock):
    """A clock that moves only when the pacer sleeps: pacing is checked exactly."""

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def _server_refusals(times: list[float], rate: Rate, spent: float = 0.0) -> int:
    """How many of these calls a server bucket of ``rate`` would refuse."""
    bucket = TokenBucket(rate.burst - spent, 0.0)
    return sum(bucket.take(rate, t) > 0 for t in sorted(times))


async def _run(pacer: CallPacer, clock: FakeTime, methods: list[str]) -> dict[str, list[float]]:
    started: dict[str, list[float]] = {}

    async def one(method: str) -> None:
        async with pacer.slot(method, authenticated=True):
            started.setdefault(method, []).append(clock.now)
            await asyncio.sleep(0)

    await asyncio.gather(*(one(method) for method in methods))
    return started


@settings(max_examples=40, deadline=None)
@given(calls=st.integers(1, 300), sends=st.integers(0, 80),
       per_second=st.sampled_from([5.0, 20.0, 50.0]), burst=st.integers(1, 200),
       send_rate=st.sampled_from([1.0, 5.0]), send_burst=st.integers(1, 40))
def test_a_paced_client_is_never_refused_by_the_budget_it_was_told(
        calls: int, sends: int, per_second: float, burst: int, send_rate: float,
        send_burst: int) -> None:
    budget = Budget(calls_per_second=per_second, call_burst=burst,
                    sends_per_second=send_rate, send_burst=send_burst)

    async def main() -> dict[str, list[float]]:
        clock = FakeTime()
        pacer = CallPacer(clock=clock, sleep=clock.sleep)
        pacer.configure(budget)
        return await _run(pacer, clock, ["messages.send"] * sends + ["account.get_me"] * calls)

    started = asyncio.run(main())
    every = started.get("messages.send", []) + started.get("account.get_me", [])
    assert len(every) == calls + sends  # all went out
    call_rate = Rate(per_second, 1.0, float(burst))
    assert _server_refusals(every, call_rate) == 0
    assert _server_refusals(started.get("messages.send", []),
                            Rate(send_rate, 1.0, float(send_burst))) == 0


async def test_a_fresh_pacer_leaves_room_for_a_half_spent_session() -> None:
    clock = FakeTime()
    pacer = CallPacer(clock=clock, sleep=clock.sleep)  # the documented defaults
    started = await _run(pacer, clock, ["updates.get_state"] * 300)
    times = started["updates.get_state"]
    assert _server_refusals(times, Rate(50.0, 1.0, 100.0), spent=50.0) == 0


async def test_rate_limited_pauses_every_call_and_the_window_holds() -> None:
    clock = FakeTime()
    pacer = CallPacer(window=3, clock=clock, sleep=clock.sleep)
    pacer.pause(5.0)
    inside = 0
    most = 0

    async def one() -> float:
        nonlocal inside, most
        async with pacer.slot("account.get_me", authenticated=True):
            inside += 1
            most = max(most, inside)
            entered = clock.now
            for _ in range(3):
                await asyncio.sleep(0)
            inside -= 1
            return entered

    entered = await asyncio.gather(*(one() for _ in range(10)))
    assert min(entered) >= 5.0
    assert most <= 3


async def test_unauthenticated_calls_stay_within_the_anonymous_frame_budget() -> None:
    clock = FakeTime()
    pacer = CallPacer(clock=clock, sleep=clock.sleep)
    times: list[float] = []

    async def one() -> None:
        async with pacer.slot("auth.challenge", authenticated=False):
            times.append(clock.now)

    await asyncio.gather(*(one() for _ in range(60)))
    # the connection's hello is one frame of the 20 too
    assert _server_refusals(times, Rate(10.0, 1.0, 20.0), spent=1.0) == 0


def test_a_server_that_announces_no_budget_gets_the_documented_defaults() -> None:
    async def main() -> list[float]:
        clock = FakeTime()
        pacer = CallPacer(clock=clock, sleep=clock.sleep)
        pacer.configure(None)
        return (await _run(pacer, clock, ["messages.send"] * 60))["messages.send"]

    assert _server_refusals(asyncio.run(main()), Rate(5.0, 1.0, 30.0)) == 0


def test_the_sdk_reads_retry_hints_from_a_close_frame_and_never_comes_back_sooner():
    import aiohttp

    from pigeon.client.link import _close_hint
    from pigeon.client.throttle import hinted_wait
    from pigeon.protocol.errors import PigeonError, RateLimited, Unavailable

    def close(reason: str) -> aiohttp.WSMessage:
        return aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, 1008, reason)

    slow = _close_hint(close("SLOW_CONSUMER retry_after=5"))
    assert isinstance(slow, PigeonError) and slow.retry_after == 5.0
    banned = _close_hint(close("BANNED retry_after=600"))
    assert isinstance(banned, RateLimited) and banned.code == "BANNED"
    notice = _close_hint(close("SHUTTING_DOWN retry_after=5 retry_spread=40"))
    assert isinstance(notice, Unavailable) and notice.retry_spread == 40.0
    assert _close_hint(close("HELLO_TIMEOUT")) is None  # no hint: the usual backoff
    assert _close_hint(close("Going away")) is None
    rng = random.Random(1)
    waits = [hinted_wait(5.0, rng) for _ in range(200)]
    assert all(5.0 <= w <= 6.0 for w in waits) and max(waits) - min(waits) > 0.5
    assert hinted_wait(None) == 0.0 and hinted_wait(10**9) <= 3600 * 1.2


def test_after_an_unannounced_drop_a_device_picks_its_moment_in_the_servers_window():
    from pigeon.client.throttle import outage_wait

    rng = random.Random(2)
    waits = [outage_wait(25.0, rng) for _ in range(2000)]
    assert all(0.0 <= w <= 25.0 for w in waits)
    # spread over the whole window, not bunched: each fifth of it gets about a fifth
    fifths = [sum(5 * i <= w < 5 * (i + 1) for w in waits) for i in range(5)]
    assert all(300 <= n <= 500 for n in fifths), fifths
    # no window (an older server, a tiny one): no wait; nonsense is bounded
    assert outage_wait(None) == 0.0 and outage_wait(-5.0) == 0.0
    assert outage_wait(10.0**9) <= 3600.0


@given(st.integers(min_value=0, max_value=60), st.floats(min_value=0.5, max_value=30.0),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_a_waiting_device_polls_an_announced_restart_and_backs_off_otherwise(attempt, cap, seed):
    # Nothing listens yet after a going-away notice: every try follows within RESTART_POLL,
    # however many failed before (issue 13: the user's sends wait on it).
    polled = waiting_backoff(attempt, cap, restarting=True, rng=random.Random(seed))
    assert RESTART_POLL / 2 <= polled <= RESTART_POLL
    # Otherwise (a refusal, an outage nobody announced): the full-jitter backoff within cap.
    waited = waiting_backoff(attempt, cap, restarting=False, rng=random.Random(seed))
    assert waited == backoff(attempt, cap=cap, rng=random.Random(seed))
