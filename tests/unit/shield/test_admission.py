import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.shield.admission import Admission, prefix_of


@pytest.mark.parametrize(("address", "prefix"), [
    ("127.1.2.3", "127.1.2.0/24"),
    ("10.0.0.255", "10.0.0.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::1", "::/64"),
    ("::ffff:192.0.2.7", "192.0.2.0/24"),  # dual-stack socket reporting an IPv4 peer
    ("fe80::1%eth0", "fe80::/64"),
    ("not an address", "not an address"),
    ("", ""),
    ("/run/pigeon.sock", "/run/pigeon.sock"),
])
def test_prefix_of(address, prefix):
    assert prefix_of(address) == prefix


def test_per_address_cap_counts_only_unauthenticated():
    adm = Admission(max_per_address=2, max_per_prefix=100)
    a, b = adm.admit("192.0.2.1").ticket, adm.admit("192.0.2.1").ticket
    assert a and b
    refused = adm.admit("192.0.2.1")
    assert (refused.ticket, refused.reason, refused.admitted) == (None, "per_address", False)
    # Once logged in, users behind one NAT no longer count against their address.
    adm.promote(a)
    adm.promote(b)
    more = [adm.admit("192.0.2.1") for _ in range(2)]
    assert all(d.admitted for d in more)
    assert adm.admit("192.0.2.1").reason == "per_address"
    assert adm.stats()["refused"] == {"per_address": 2, "per_prefix": 0, "total": 0}


def test_per_prefix_cap():
    adm = Admission(max_per_address=10, max_per_prefix=3)
    for i in range(3):
        assert adm.admit(f"198.51.100.{i}").admitted
    assert adm.admit("198.51.100.200").reason == "per_prefix"
    assert adm.admit("198.51.101.1").admitted  # the neighbouring /24 is another prefix
    assert adm.admit("2001:db8::1").admitted


def test_total_cap_refuses_rather_than_evicting_logged_in_users():
    adm = Admission(max_total=3, max_unauthenticated=3)
    tickets = [adm.admit(f"10.0.{i}.1").ticket for i in range(3)]
    for t in tickets:
        adm.promote(t)
    refused = adm.admit("10.9.9.9")
    assert refused.reason == "total" and refused.evict is None
    adm.release(tickets[0])
    assert adm.admit("10.9.9.9").admitted


def test_full_unauthenticated_pool_evicts_a_random_idle_connection():
    adm = Admission(max_unauthenticated=3, max_per_address=10, rng=random.Random(7))
    old = [adm.admit("203.0.113.1").ticket for _ in range(3)]
    for t, name in zip(old, "abc", strict=True):
        t.handle = name
    d = adm.admit("198.51.100.9")
    assert d.admitted and d.reason is None
    assert d.evict in old and not d.evict.open
    assert d.evict.handle in {"a", "b", "c"}
    assert adm.unauthenticated == 3
    assert adm.stats()["evicted"] == 1
    adm.release(d.evict)  # the caller releases on close: harmless
    assert adm.unauthenticated == 3


def test_authenticated_connections_are_never_evicted():
    adm = Admission(max_unauthenticated=2, max_per_address=100, rng=random.Random(1))
    users = [adm.admit("192.0.2.1").ticket for _ in range(2)]
    for u in users:
        adm.promote(u)
        assert u.authenticated
    attackers = []
    for _ in range(50):
        d = adm.admit("203.0.113.66")
        attackers.append(d.ticket)
        assert d.evict is None or not d.evict.authenticated
    assert all(u.open for u in users)
    assert adm.stats()["authenticated"] == 2


def test_random_drop_mostly_hits_the_attacker():
    # An attacker holding 90% of the pool takes ~90% of the evictions, so a legitimate
    # client that authenticates before a handful of arrivals almost always survives.
    adm = Admission(max_unauthenticated=100, max_per_address=1000, max_per_prefix=1000,
                    rng=random.Random(3))
    for _ in range(90):
        adm.admit("203.0.113.1")
    legit = [adm.admit(f"192.0.2.{i}").ticket for i in range(10)]
    hits = 0
    for _ in range(20):
        d = adm.admit("203.0.113.1")
        hits += d.evict in legit
    assert hits <= 6
    survivors = [t for t in legit if t.open]
    for t in survivors:
        adm.promote(t)
    assert all(t.open for t in survivors)


def test_release_is_idempotent_and_promote_after_release_is_a_noop():
    adm = Admission()
    t = adm.admit("192.0.2.1").ticket
    adm.release(t)
    adm.release(t)
    adm.promote(t)
    assert not t.authenticated
    assert adm.stats()["open"] == 0
    u = adm.admit("192.0.2.1").ticket
    adm.promote(u)
    adm.promote(u)
    adm.release(u)
    adm.release(u)
    assert adm.stats() | {"admitted": 0} == {
        "open": 0, "unauthenticated": 0, "authenticated": 0, "admitted": 0,
        "refused": {"per_address": 0, "per_prefix": 0, "total": 0}, "evicted": 0,
        "addresses": 0, "prefixes": 0,
    }


def test_invalid_caps_are_refused():
    with pytest.raises(ValueError):
        Admission(max_total=0)


ADDRESSES = [f"10.0.{net}.{host}" for net in range(3) for host in range(4)] + ["2001:db8::1"]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.sampled_from(ADDRESSES)),
        st.tuples(st.just("promote"), st.integers(0, 200)),
        st.tuples(st.just("release"), st.integers(0, 200)),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, seed=st.integers(0, 2**32))
def test_invariants_hold_for_any_sequence(ops, seed):
    caps = {"max_per_address": 3, "max_per_prefix": 5, "max_unauthenticated": 8,
            "max_total": 12}
    adm = Admission(**caps, rng=random.Random(seed))
    tickets = []
    for op, arg in ops:
        if op == "admit":
            d = adm.admit(arg)
            assert (d.ticket is None) == (d.reason is not None)
            if d.evict is not None:
                assert d.ticket is not None and not d.evict.open
                assert not d.evict.authenticated
            if d.ticket is not None:
                tickets.append(d.ticket)
        elif tickets:
            t = tickets[arg % len(tickets)]
            was_open = t.open
            (adm.promote if op == "promote" else adm.release)(t)
            assert t.open == (was_open and op == "promote")
        live = [t for t in tickets if t.open]
        unauth = [t for t in live if not t.authenticated]
        assert adm.open == len(live) <= caps["max_total"]
        assert adm.unauthenticated == len(unauth) <= caps["max_unauthenticated"]
        for address in ADDRESSES:
            assert sum(t.address == address for t in unauth) <= caps["max_per_address"]
        for prefix in {t.prefix for t in unauth}:
            assert sum(t.prefix == prefix for t in unauth) <= caps["max_per_prefix"]
        s = adm.stats()
        assert s["addresses"] == len({t.address for t in unauth})
        assert s["admitted"] == len(tickets)
