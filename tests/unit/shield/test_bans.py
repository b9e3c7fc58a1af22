import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.protocol.errors import RateLimited
from pigeon.shield.bans import BanList


class RecordingMirror:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float | None]] = []

    async def add(self, target: str, seconds: float) -> bool:
        self.calls.append(("add", target, seconds))
        return True

    async def remove(self, target: str) -> bool:
        self.calls.append(("remove", target, None))
        return True


def hit(bans, address, n, reason="rate"):
    return [bans.strike(address, reason) for _ in range(n)][-1]


def test_enough_strikes_in_the_window_ban_for_the_duration(clock):
    bans = BanList(strikes=5, window=60, duration=600, clock=clock)
    assert hit(bans, "192.0.2.1", 4) == 0.0
    assert bans.banned("192.0.2.1") == 0.0
    assert bans.strike("192.0.2.1", "rate") == 600
    assert bans.banned("192.0.2.1") == 600
    clock.advance(100)
    assert bans.banned("192.0.2.1") == 500
    assert bans.banned("192.0.2.2") == 0.0
    clock.advance(500)
    assert bans.banned("192.0.2.1") == 0.0
    assert bans.stats()["banned_addresses"] == 0


def test_check_raises_banned_with_retry_after(clock):
    bans = BanList(strikes=1, duration=90, clock=clock)
    bans.check("192.0.2.1")
    bans.strike("192.0.2.1", "pow")
    clock.advance(0.5)
    with pytest.raises(RateLimited) as info:
        bans.check("192.0.2.1")
    assert info.value.code == "BANNED" and info.value.retry_after == 89.5


def test_slow_strikes_never_ban(clock):
    bans = BanList(strikes=5, window=60, clock=clock)
    for _ in range(100):
        bans.strike("192.0.2.1")
        clock.advance(15)  # four per window: under the limit forever
    assert bans.banned("192.0.2.1") == 0.0


def test_the_window_slides_across_its_boundary(clock):
    clock.now = 0.0
    bans = BanList(strikes=10, window=60, clock=clock)
    clock.advance(50)
    hit(bans, "192.0.2.1", 8)  # late in the first fixed window
    clock.advance(15)  # 5 s into the next: 8 * 55/60 = 7.3 still counted
    assert hit(bans, "192.0.2.1", 2) == 0.0  # 9.3 < 10
    assert bans.strike("192.0.2.1") > 0  # 10.3
    clock.advance(200)  # two windows later nothing is left
    assert hit(bans, "192.0.2.9", 9) == 0.0


def test_a_banned_address_stops_accumulating(clock):
    bans = BanList(strikes=2, clock=clock)
    hit(bans, "192.0.2.1", 2)
    assert hit(bans, "192.0.2.1", 50) == 600
    assert bans.stats()["bans"] == 1
    assert bans.stats()["strikes"] == {"rate": 52}


def test_enough_banned_addresses_ban_their_prefix(clock):
    bans = BanList(strikes=1, prefix_threshold=3, clock=clock)
    bans.strike("203.0.113.1")
    bans.strike("203.0.113.2")
    assert bans.banned("203.0.113.200") == 0.0
    clock.advance(10)
    bans.strike("203.0.113.3")
    assert bans.banned("203.0.113.200") == 600  # never struck, but its /24 is banned
    assert bans.banned("203.0.114.1") == 0.0
    assert bans.banned("203.0.113.1") == 600  # the prefix ban outlasts its own
    prefixes = [b for b in bans.list() if b.prefix]
    assert [(b.target, b.reason) for b in prefixes] == [("203.0.113.0/24", "limit")]
    assert bans.stats()["banned_prefixes"] == 1


def test_ipv6_prefix_is_the_slash_64(clock):
    bans = BanList(strikes=1, prefix_threshold=2, clock=clock)
    bans.strike("2001:db8:0:1::a")
    bans.strike("2001:db8:0:1::b")
    assert bans.banned("2001:db8:0:1:ffff::1") == 600
    assert bans.banned("2001:db8:0:2::1") == 0.0


def test_expired_bans_no_longer_count_towards_a_prefix(clock):
    bans = BanList(strikes=1, prefix_threshold=2, duration=60, clock=clock)
    bans.strike("198.51.100.1")
    clock.advance(61)
    bans.strike("198.51.100.2")
    assert bans.banned("198.51.100.3") == 0.0


def test_non_addresses_are_banned_alone(clock):
    bans = BanList(strikes=1, prefix_threshold=1, clock=clock)
    bans.strike("unix-client")
    assert bans.banned("unix-client") == 600
    assert [b.prefix for b in bans.list()] == [False]


def test_memory_is_bounded(clock):
    bans = BanList(strikes=3, max_entries=50, clock=clock)
    for i in range(1000):
        bans.strike(f"10.{i // 250}.{i % 250}.1")
    assert bans.stats()["tracked"] == 50
    for i in range(200):
        clock.advance(1)
        hit(bans, f"10.9.{i}.1", 3)  # each in its own /24: no prefix bans
    s = bans.stats()
    assert s["banned_addresses"] == 50 and s["evicted"] == 150
    assert bans.banned("10.9.199.1") > 0  # the newest are kept
    assert bans.banned("10.9.0.1") == 0  # the ones closest to expiry went first


def test_manual_ban_unban_and_list(clock):
    mirror = RecordingMirror()
    bans = BanList(clock=clock, mirror=mirror)
    bans.ban("198.51.100.0/24", 30, "operator")
    bans.ban("192.0.2.7")
    assert bans.banned("198.51.100.99") == 30
    listed = bans.list()
    assert [(b.target, b.prefix, b.seconds_left, b.reason) for b in listed] == [
        ("192.0.2.7", False, 600, "manual"), ("198.51.100.0/24", True, 30, "operator")]
    assert bans.unban("198.51.100.0/24") and not bans.unban("198.51.100.0/24")
    assert bans.banned("198.51.100.99") == 0.0
    assert mirror.calls == []  # no event loop here: nothing scheduled
    assert bans.stats()["mirror_skipped"] == 3


def test_manual_prefix_of_any_length(clock):
    bans = BanList(clock=clock)
    assert bans.ban("198.51.100.77/22", 60) == "198.51.100.0/22"
    assert bans.ban("2001:db8::/32", 60) == "2001:db8::/32"
    assert bans.banned("198.51.103.1") == 60
    assert bans.banned("::ffff:198.51.101.1") == 60
    assert bans.banned("198.51.104.1") == 0
    assert bans.banned("2001:db8:ffff::1") == 60
    assert bans.banned("not-an-ip") == 0
    with pytest.raises(ValueError):
        bans.ban("nonsense/8")
    clock.advance(61)
    assert bans.banned("198.51.103.1") == 0
    assert bans._prefix_lengths == {}  # forgotten with the ban


def test_automatic_and_manual_prefix_bans_expire_independently(clock):
    bans = BanList(strikes=1, prefix_threshold=1, duration=60, clock=clock)
    bans.ban("10.0.0.0/8", 600)
    bans.strike("192.0.2.1")  # bans 192.0.2.1 and, at threshold 1, 192.0.2.0/24
    assert bans.banned("192.0.2.99") == 60
    clock.advance(61)
    assert bans.banned("192.0.2.99") == 0
    assert bans.banned("10.1.2.3") == 539


async def test_bans_are_mirrored_in_the_background(clock):
    mirror = RecordingMirror()
    bans = BanList(strikes=1, prefix_threshold=2, clock=clock, mirror=mirror)
    bans.strike("203.0.113.1")
    bans.strike("203.0.113.2")
    bans.unban("203.0.113.1")
    assert bans.stats()["mirror_pending"] == 4
    await bans.flush()
    assert mirror.calls == [
        ("add", "203.0.113.1", 600), ("add", "203.0.113.2", 600),
        ("add", "203.0.113.0/24", 600), ("remove", "203.0.113.1", None)]


def test_configuration_is_validated():
    with pytest.raises(ValueError):
        BanList(strikes=0)


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 40), st.sampled_from([0, 0, 1, 30, 700])),
                      max_size=200))
def test_bounded_and_consistent_under_any_strikes(steps):
    now = [0.0]
    bans = BanList(strikes=3, window=60, duration=600, prefix_threshold=2, max_entries=10,
                   clock=lambda: now[0])
    for host, dt in steps:
        now[0] += dt
        address = f"10.0.{host % 5}.{host}"
        left = bans.strike(address)
        assert left == bans.banned(address) or left == 600
        s = bans.stats()
        assert s["tracked"] <= 10
        assert s["banned_addresses"] + s["banned_prefixes"] <= 10
        for ban in bans.list():
            assert 0 < ban.seconds_left <= 600
            assert bans.banned(ban.target) >= ban.seconds_left
