"""The adaptive budgets for login codes, on a fake clock."""

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.shield.codebudget import AdaptiveBudget
from pigeon.shield.ratelimit import Rate
from clocks import FakeClock

FLOOR = Rate.parse("10/1m burst 10")


def granted(budget: AdaptiveBudget, key: str, n: int, proven: bool = True) -> int:
    return sum(budget.take(key, proven) is None for _ in range(n))


def test_a_fresh_budget_grants_its_floor_and_burst(clock):
    budget = AdaptiveBudget(FLOOR, clock=clock)
    assert budget.per_minute("49") == 10
    assert granted(budget, "49", 50) == 10  # the burst
    refusal = budget.take("49", True)
    assert refusal is not None and not refusal.proof and 5.9 < refusal.wait <= 6.0
    clock.advance(60)
    assert granted(budget, "49", 50) == 10  # one minute's worth
    assert granted(budget, "44", 50) == 10  # another key has its own budget


def test_requests_without_proof_get_only_the_open_share(clock):
    budget = AdaptiveBudget(FLOOR, open_share=0.3, clock=clock)
    assert granted(budget, "49", 50, proven=False) == 3
    refusal = budget.take("49", False)
    assert refusal is not None and refusal.proof  # proof of work would help
    assert granted(budget, "49", 50, proven=True) == 7  # the rest is there for the proven
    refusal = budget.take("49", True)
    assert refusal is not None and not refusal.proof


def test_the_allowance_learns_normal_traffic_slowly(clock):
    budget = AdaptiveBudget(FLOOR, factor=3.0, halflife=3600.0, clock=clock)
    # Six hours of 20 codes a minute, above the floor's 10: the baseline approaches 20 and
    # the allowance 3 x 20.
    for _ in range(6 * 60):
        granted(budget, "49", 20)
        clock.advance(60)
    assert 18 < budget.per_minute("49") / 3 < 20.5
    assert granted(budget, "49", 1000) >= 55  # a busy minute is served


def test_a_flood_at_the_cap_raises_the_allowance_only_slowly(clock):
    budget = AdaptiveBudget(FLOOR, factor=3.0, halflife=86400.0, clock=clock)
    start = budget.per_minute("7")
    sent = 0
    for _ in range(60):  # an hour of a flood that takes everything it is given
        sent += granted(budget, "7", 10_000, proven=True)
        clock.advance(60)
    assert start == 10
    assert budget.per_minute("7") < 11  # under 10% more after an hour at the cap
    assert sent <= 10 + 60 * 11  # never more than burst + allowance


def test_an_idle_budget_forgets_towards_the_floor(clock):
    budget = AdaptiveBudget(FLOOR, factor=2.0, halflife=600.0, clock=clock)
    budget.restore({"49": 100.0})
    assert budget.per_minute("49") == 200
    clock.advance(600)  # one half-life with nothing sent
    assert 95 < budget.per_minute("49") < 105
    clock.advance(6000)
    assert budget.per_minute("49") == 10


def test_baselines_survive_export_and_restore(clock):
    budget = AdaptiveBudget(FLOOR, halflife=600.0, clock=clock)
    for _ in range(30):
        granted(budget, "33", 15)
        clock.advance(60)
    saved = budget.export()
    assert saved["33"] > 5
    again = AdaptiveBudget(FLOOR, halflife=600.0, clock=clock)
    again.restore(saved)
    assert abs(again.per_minute("33") - budget.per_minute("33")) < 1e-6
    again.restore({"bad": float("nan"), "neg": -1.0})
    assert "bad" not in again.export() and "neg" not in again.export()
    assert set(again.status()) <= {"33"}


def test_keys_are_bounded(clock):
    budget = AdaptiveBudget(FLOOR, clock=clock, max_keys=5)
    for i in range(50):
        budget.take(str(i), True)
    assert len(budget.status()) == 5


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 120), st.integers(0, 40), st.booleans()),
                      max_size=60))
def test_never_grants_more_than_burst_plus_allowance(steps):
    """Whatever the pattern of requests, the codes granted over any run are bounded by the
    largest burst plus the largest allowance times the time elapsed."""
    clock = FakeClock()
    budget = AdaptiveBudget(FLOOR, factor=3.0, halflife=3600.0, open_share=0.25, clock=clock)
    total = open_total = 0
    elapsed = 0.0
    peak = budget.per_minute("k")
    for advance, n, proven in steps:
        clock.advance(advance)
        elapsed += advance
        peak = max(peak, budget.per_minute("k"))
        got = granted(budget, "k", n, proven)
        total += got
        open_total += 0 if proven else got
        peak = max(peak, budget.per_minute("k"))
    scale = peak / 10
    assert total <= 10 * scale + peak * elapsed / 60 + 1e-6
    assert open_total <= max(1.0, 2.5 * scale) + 0.25 * peak * elapsed / 60 + 1e-6
