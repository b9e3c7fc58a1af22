"""The SDK's adaptive throttle (Google SRE book) and backoff, with a fake clock."""

import random

import pytest

from pigeon.client.throttle import AdaptiveThrottle, backoff


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
