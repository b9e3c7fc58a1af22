import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.shield.ratelimit import KeyedLimiter, Rate


@pytest.mark.parametrize(("text", "rate"), [
    ("5/1h burst 3", Rate(5, 3600, 3)),
    ("10/s", Rate(10, 1, 10)),
    ("0.5/2m", Rate(0.5, 120, 1)),
    (" 100 / 1d burst 20 ", Rate(100, 86400, 20)),
])
def test_parse(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "lots", "5/1y", "0/1s", "5/0s", "5/1s burst 0", "-1/s"])
def test_parse_refuses_nonsense(text):
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_burst_then_one_per_period(clock):
    limiter = KeyedLimiter(Rate.parse("1/10s burst 3"), clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(10.0)
    assert limiter.take("b") == 0.0  # keys are independent
    clock.advance(9.0)
    assert limiter.take("a") == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.take("a") == 0.0
    assert limiter.take("a", cost=2) == pytest.approx(20.0)


def test_keys_are_bounded_and_a_forgotten_key_starts_full(clock):
    limiter = KeyedLimiter(Rate.parse("1/1h burst 1"), max_keys=2, clock=clock)
    limiter.take("a")
    limiter.take("b")
    limiter.take("a")  # "a" is now the most recently used
    limiter.take("c")  # evicts "b"
    assert len(limiter) == 2
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0  # forgotten, so it starts full again


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 50), st.sampled_from([0.5, 1.0, 2.0])),
                      max_size=100))
def test_never_more_than_burst_plus_rate_times_elapsed(steps):
    now = [0.0]
    rate = Rate.parse("3/10s burst 4")
    limiter = KeyedLimiter(rate, clock=lambda: now[0])
    spent = 0.0
    for dt, cost in steps:
        now[0] += dt
        wait = limiter.take("k", cost)
        if wait == 0.0:
            spent += cost
        else:
            assert wait > 0
        assert spent <= rate.burst + rate.per_second * now[0] + 1e-9
