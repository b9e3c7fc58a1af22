"""The shield's state (shield/state.py): the in-memory parts on their own, then the
ShieldState contract, run against every implementation in ``STATES``: two shields built on
one state behave as two workers sharing it (issue 12's shared state joins the list)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol.errors import ProofOfWorkRequired, RateLimited
from pigeon.server.settings import Settings
from pigeon.shield.guard import Shield
from pigeon.shield.pow import solve
from pigeon.shield.ratelimit import Rate
from pigeon.shield.state import KnownAddresses, MemoryShieldState, ShieldState, SpentTokens

SECRET = b"s" * 32
STATES: list[Callable[..., ShieldState]] = [MemoryShieldState]


# -- the replay set ---------------------------------------------------------------------------
def test_a_token_is_spent_once_until_it_expires() -> None:
    spent = SpentTokens()
    assert spent.spend(b"a", expires=10.0, now=0.0)
    assert not spent.spend(b"a", expires=10.0, now=9.9)
    assert spent.spend(b"b", expires=20.0, now=9.9)
    assert len(spent) == 2
    assert spent.spend(b"c", expires=30.0, now=10.0)  # "a" expired and was purged
    assert len(spent) == 2


@given(st.lists(st.binary(min_size=1, max_size=3), max_size=60), st.integers(1, 8))
def test_the_replay_set_holds_at_most_its_capacity(macs: list[bytes], capacity: int) -> None:
    spent = SpentTokens(capacity)
    fresh = 0
    for mac in macs:
        fresh += spent.spend(mac, expires=100.0, now=0.0)
        assert len(spent) <= capacity
    assert spent.evictions == max(0, fresh - capacity)


def test_a_full_replay_set_forgets_the_oldest() -> None:
    spent = SpentTokens(2)
    for mac in (b"1", b"2", b"3"):
        assert spent.spend(mac, expires=100.0, now=0.0)
    assert spent.evictions == 1
    assert spent.spend(b"1", expires=100.0, now=0.0)  # forgotten: spendable again
    assert not spent.spend(b"3", expires=100.0, now=0.0)


def test_bounds_are_positive() -> None:
    with pytest.raises(ValueError):
        SpentTokens(0)
    with pytest.raises(ValueError):
        KnownAddresses(0)


# -- known addresses --------------------------------------------------------------------------
def test_known_addresses_forget_the_least_recently_seen_and_count_prefixes() -> None:
    known = KnownAddresses(2)
    known.remember("192.0.2.1")
    known.remember("198.51.100.7")
    known.remember("192.0.2.1")  # seen again: now the most recent
    known.remember("203.0.113.5")
    assert list(known) == ["192.0.2.1", "203.0.113.5"]
    assert "198.51.100.7" not in known and len(known) == 2
    assert known.holds_prefix("192.0.2.0/24")
    assert not known.holds_prefix("198.51.100.0/24")  # its only address was forgotten


# -- the contract -----------------------------------------------------------------------------
@pytest.fixture(params=STATES, ids=lambda make: make.__name__)
def make_state(request: pytest.FixtureRequest) -> Callable[..., ShieldState]:
    return request.param  # type: ignore[no-any-return]


def workers(make_state: Callable[..., ShieldState], clock, **overrides) -> tuple[Shield, Shield]:
    """Two shields on one state: what two workers of a deployment see."""
    settings = dataclasses.replace(Settings(), **overrides)
    state = make_state(SECRET, clock=clock)
    return (Shield(settings, state=state, clock=clock, wall_clock=clock),
            Shield(settings, state=state, clock=clock, wall_clock=clock))


async def test_a_state_starts_and_stops(make_state, clock) -> None:
    state = make_state(SECRET, clock=clock)
    await state.start()
    assert state.secret == SECRET
    await state.stop()


def test_one_name_is_one_limiter_and_its_rate_is_fixed(make_state, clock) -> None:
    state = make_state(SECRET, clock=clock)
    rate = Rate.parse("1/1m burst 1")
    first, again = state.limiter("x", rate), state.limiter("x", rate)
    assert first.take("k") == 0.0
    assert again.take("k") > 0  # the same buckets
    assert state.limiter("y", rate).take("k") == 0.0  # another name, other buckets
    with pytest.raises(ValueError):
        state.limiter("x", Rate.parse("2/1m burst 1"))
    bans = state.bans("b", strikes=1, window=60.0, duration=60.0)
    bans.strike("192.0.2.1")
    assert state.bans("b", strikes=1, window=60.0, duration=60.0).banned("192.0.2.1") > 0
    with pytest.raises(ValueError):
        state.bans("b", strikes=2, window=60.0, duration=60.0)


def test_workers_accept_each_others_challenges_and_share_spent_ones(make_state, clock) -> None:
    a, b = workers(make_state, clock)
    token, bits, _ = a.pow.challenge(min_bits=4)
    nonce = solve(token, bits)
    assert b.pow.redeem(token, nonce) == bits  # one secret: B knows A's token
    with pytest.raises(ProofOfWorkRequired) as refused:
        a.pow.redeem(token, nonce)  # one replay set: spent on B is spent on A
    assert refused.value.code == "POW_INVALID"
    token, bits, _ = a.pow.challenge(min_bits=4)
    other = Shield(Settings(), b"o" * 32, clock=clock, wall_clock=clock)  # another deployment
    with pytest.raises(ProofOfWorkRequired, match="not issued by this server"):
        other.pow.redeem(token, solve(token, bits))


def test_workers_share_bans(make_state, clock) -> None:
    a, b = workers(make_state, clock, ban_strikes=3)
    address = "203.0.113.9"
    for _ in range(3):
        a.strike(address, "rate")
    assert b.accept(address) is None  # banned on A: refused at B's accept
    with pytest.raises(RateLimited) as refused:
        b.check_banned(address)
    assert refused.value.code == "BANNED"
    for _ in range(3):
        a.strike(address, "frame_rate", session_id=7, user_id=1)
    with pytest.raises(RateLimited):
        b.check_session(7, 1)  # a session banned on A is banned on B


def test_workers_share_rate_limits(make_state, clock) -> None:
    a, b = workers(make_state, clock, rate_session="1/1m burst 2", rate_account="100/1s")
    a.check_rate("users.get", "192.0.2.1", 1, 7)
    b.check_rate("users.get", "192.0.2.2", 1, 7)
    with pytest.raises(RateLimited):
        a.check_rate("users.get", "192.0.2.1", 1, 7)  # the session's burst was spent on both
    b.check_rate("users.get", "192.0.2.2", 1, 8)  # another session has its own


def test_workers_share_known_addresses(make_state, clock) -> None:
    a, b = workers(make_state, clock)
    assert "198.51.100.4" not in b.known
    a.logged_in("198.51.100.4", 7)
    assert "198.51.100.4" in b.known
    assert b.status()["known_addresses"] == 1


def test_a_shield_needs_a_secret_or_a_state(clock) -> None:
    with pytest.raises(ValueError):
        Shield(Settings(), clock=clock)
