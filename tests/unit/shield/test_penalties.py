"""Who pays for a strike (issue 7, finding 10): sessions by themselves, shared addresses only
with evidence proportional to the logged-in sessions behind them. Fake clocks throughout."""

import pytest

from pigeon.protocol.errors import RateLimited
from pigeon.server.settings import Settings
from pigeon.shield.guard import Shield
from pigeon.shield.penalties import Penalties
from pigeon.shield.residents import Residents

NAT = "198.51.100.7"


def penalties(clock, mirror=None, **overrides) -> Penalties:
    settings = Settings(ban_strikes=5, ban_window=60, ban_seconds=600, ban_shared_window=3600,
                        ban_door_rate="1/1s burst 2", ban_account_sessions=2, **overrides)
    return Penalties(settings, clock=clock, mirror=mirror)


def strike_until_banned(p: Penalties, address: str, limit: int = 1000) -> int:
    for n in range(1, limit + 1):
        p.strike(address, "junk")
        if p.addresses.banned(address):
            return n
    raise AssertionError(f"{address} not banned after {limit} strikes")


def test_an_address_nobody_logged_in_from_is_banned_at_the_base_threshold(clock):
    assert strike_until_banned(penalties(clock), NAT) == 5


@pytest.mark.parametrize("sessions", [1, 3, 40])
def test_the_strikes_that_ban_an_address_grow_with_its_logged_in_sessions(clock, sessions):
    p = penalties(clock)
    for session_id in range(sessions):
        p.arrive(NAT, session_id)
    assert p.strikes_needed(NAT) == 5 * (1 + sessions)
    assert strike_until_banned(p, NAT) == 5 * (1 + sessions)


def test_sessions_that_left_count_for_the_shared_window_then_not(clock):
    p = penalties(clock)
    for session_id in range(3):
        p.arrive(NAT, session_id)
        p.leave(NAT, session_id)
    clock.advance(3599)
    assert p.strikes_needed(NAT) == 20
    clock.advance(2)
    assert p.strikes_needed(NAT) == 5


def test_a_session_still_connected_counts_however_long_ago_it_arrived(clock):
    p = penalties(clock)
    p.arrive(NAT, 1)
    p.arrive(NAT, 1)  # a second connection of the same session is not a second person
    p.leave(NAT, 1)
    clock.advance(10 * 3600)
    assert p.strikes_needed(NAT) == 10


def test_a_logged_in_connection_strikes_its_session_not_its_address(clock):
    p = penalties(clock)
    closed = []
    p.on_session_ban = lambda session_id, seconds: closed.append((session_id, seconds))
    p.on_address_ban = lambda address: closed.append(address)
    p.arrive(NAT, 7)
    for _ in range(5):
        p.strike(NAT, "MALFORMED_FRAME", session_id=7, user_id=70)
    assert closed == [(7, 600)]
    assert p.addresses.banned(NAT) == 0
    with pytest.raises(RateLimited) as refused:
        p.check_session(7, 70)
    assert refused.value.code == "BANNED" and refused.value.retry_after == 600
    p.check_session(8, 70)  # the account's other devices carry on
    clock.advance(601)
    p.check_session(7, 70)


def test_session_bans_add_up_to_an_account_ban(clock):
    p = penalties(clock)
    accounts = []
    p.on_account_ban = lambda user_id, seconds: accounts.append(user_id)
    for session_id in (1, 2):
        for _ in range(5):
            p.strike(NAT, "rate", session_id=session_id, user_id=70)
    assert accounts == [70]
    with pytest.raises(RateLimited):
        p.check_account(70)
    with pytest.raises(RateLimited):
        p.check_session(3, 70)  # a fresh session of a banned account is refused too
    p.check_account(71)


def test_the_token_only_door_opens_for_addresses_with_logged_in_sessions(clock):
    p = penalties(clock)
    stranger = "203.0.113.9"
    assert not p.door_open(stranger)  # nobody logged in from there: no door
    p.remember("192.0.2.1")  # known from the sessions table, no live session
    assert [p.door_open("192.0.2.1") for _ in range(3)] == [True, True, False]
    for session_id in range(10):
        p.arrive(NAT, session_id)
    # ten residents: (1 + 10) times the base rate (burst 2 -> 22 sockets at once)
    assert sum(p.door_open(NAT) for _ in range(40)) == 22
    clock.advance(1)
    assert sum(p.door_open(NAT) for _ in range(40)) == 11


class RecordingMirror:
    def __init__(self):
        self.added = []

    async def add(self, target, seconds):
        self.added.append(target)
        return True

    async def remove(self, target):
        return True


async def test_bans_of_shared_addresses_stay_out_of_the_kernel(clock):
    mirror = RecordingMirror()
    p = penalties(clock, mirror=mirror)
    p.arrive(NAT, 1)
    strike_until_banned(p, NAT)
    strike_until_banned(p, "203.0.113.9")
    await p.addresses.flush()
    assert mirror.added == ["203.0.113.9"]  # the kernel would shut the token-only door
    p.addresses.ban(NAT, 60)  # an operator's own ban goes to the kernel all the same
    await p.addresses.flush()
    assert mirror.added == ["203.0.113.9", NAT]


def test_the_shield_admits_a_banned_shared_address_only_through_the_door(clock):
    shield = Shield(Settings(ban_strikes=5, ban_door_rate="1/1s burst 2"), b"k" * 32,
                    clock=clock)
    shield.logged_in(NAT, 1)
    for _ in range(10):
        shield.strike(NAT, "junk")
    assert shield.bans.banned(NAT)
    admitted = [shield.accept(NAT) for _ in range(5)]
    # burst 2, times (1 + one resident session)
    assert [d is not None for d in admitted] == [True, True, True, True, False]
    with pytest.raises(RateLimited) as refused:
        shield.check_banned(NAT)  # a stranger's hello or call through the door
    assert refused.value.code == "BANNED"
    for _ in range(10):
        shield.strike("203.0.113.9", "junk")
    assert shield.accept("203.0.113.9") is None  # nobody lives there: no door at all


def test_residents_memory_is_bounded(clock):
    residents = Residents(window=60, max_addresses=3, max_per_address=2, clock=clock)
    for n in range(5):
        residents.arrive(f"192.0.2.{n}", 1)
    assert len(residents) == 3 and residents.count("192.0.2.0") == 0
    for session_id in range(5):
        residents.arrive("192.0.2.4", session_id)
    assert residents.count("192.0.2.4") == 2
