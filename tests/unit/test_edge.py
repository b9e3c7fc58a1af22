"""X-Forwarded-For from trusted proxies only, rightmost untrusted hop (issue 7, finding 11)."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.server.edge import Edge, forwarded_client, normalize, parse_networks

PROXY = "10.0.0.5"
edge = Edge("10.0.0.0/24, fd00::/64")


@pytest.mark.parametrize("peer,headers,client", [
    (PROXY, ["198.51.100.7"], "198.51.100.7"),
    # what the client wrote itself (left of what our proxy appended) is ignored
    (PROXY, ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
    # a chain of our own proxies is skipped, rightmost first
    (PROXY, ["6.6.6.6, 198.51.100.7, 10.0.0.9"], "198.51.100.7"),
    (PROXY, ["6.6.6.6", "198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # several header lines
    (PROXY, ["[2001:db8::7]:4711"], "2001:db8::7"),
    (PROXY, ["198.51.100.7:4711"], "198.51.100.7"),
    (PROXY, ["::ffff:198.51.100.7"], "198.51.100.7"),
    (PROXY, [], PROXY),                               # no header: the proxy itself
    (PROXY, ["unknown"], PROXY),                      # garbage from our proxy: no guess
    (PROXY, ["6.6.6.6, garbage, 10.0.0.9"], "10.0.0.9"),  # the last trusted hop we know
    (PROXY, ["10.0.0.8, 10.0.0.9"], "10.0.0.8"),      # all trusted: the leftmost
    ("198.51.100.99", ["6.6.6.6"], "198.51.100.99"),  # not a trusted peer: header ignored
    ("fd00::3", ["2001:db8::1"], "2001:db8::1"),
])
def test_rightmost_untrusted_hop(peer, headers, client):
    assert edge.client(peer, headers) == client


def test_nothing_is_trusted_by_default():
    assert not Edge().trusted("127.0.0.1")
    assert Edge().client("127.0.0.1", ["6.6.6.6"]) == "127.0.0.1"


def test_bad_networks_are_named():
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks("10.0.0.0/8, 10.0.0.0/33")
    assert parse_networks(["192.0.2.1", " "]) == (ipaddress.ip_network("192.0.2.1/32"),)


def test_normalize():
    assert normalize("::ffff:127.0.0.1") == "127.0.0.1"
    assert normalize("2001:DB8::1") == "2001:db8::1"
    assert normalize("not an address") == "not an address"


hop = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["unknown", "_hidden", "[::1]:80", "1.2.3.4:5", "[", "]", ":", ""]),
    st.text(max_size=20),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(hop, max_size=6).map(", ".join), max_size=4),
       st.sampled_from([PROXY, "fd00::1", "198.51.100.1"]))
def test_any_header_gives_the_peer_or_an_address_and_never_raises(headers, peer):
    client = edge.client(peer, headers)
    if client != peer:
        ipaddress.ip_address(client)  # a real address, canonical
        assert normalize(client) == client
        assert edge.trusted(peer)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=5), st.ip_addresses(v=4))
def test_a_client_cannot_spoof_past_our_proxy(spoofed, real):
    # Whatever the client writes, our proxy appends the address it really saw.
    header = ", ".join([*spoofed, str(real)])
    expected = str(real) if not edge.trusted(str(real)) else forwarded_client(
        PROXY, [", ".join(spoofed)], edge.networks)
    assert edge.client(PROXY, [header]) == expected
