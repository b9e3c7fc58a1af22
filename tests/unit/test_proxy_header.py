"""The PROXY protocol header parser (issue 7, finding 11): headers built here round-trip
however the bytes are split, and no input raises anything but ProxyHeaderError."""

import ipaddress

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pigeon.server.proxy_header import (
    MAX_HEADER_BYTES, V2_SIGNATURE, ProxyHeader, ProxyHeaderError, ProxyHeaderParser,
)
from pigeon.testing import proxy_v1, proxy_v2

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
endpoints = st.one_of(
    st.tuples(st.tuples(ipv4, ports), st.tuples(ipv4, ports)),
    st.tuples(st.tuples(ipv6, ports), st.tuples(ipv6, ports)),
)
http = st.binary(max_size=200).map(lambda tail: b"GET /v1/ws HTTP/1.1\r\n" + tail)


def feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[ProxyHeader, bytes]:
    """Feed ``data`` split at ``cuts``; the header, and what followed it (the parser's
    ``rest`` plus whatever was not fed yet)."""
    parser = ProxyHeaderParser()
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        header = parser.feed(data[start:cut])
        start = cut
        if header is not None:
            return header, header.rest + data[start:]
    raise AssertionError("the header never completed")


def canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


@settings(max_examples=300, deadline=None)
@given(endpoints, http, st.lists(st.integers(0, 400), max_size=8))
def test_v1_round_trip(ends, tail, cuts):
    source, destination = ends
    data = proxy_v1(source, destination) + tail
    header, rest = feed_in_pieces(data, cuts)
    assert header.version == 1
    assert header.source == (canonical(source[0]), source[1])
    assert header.destination == (canonical(destination[0]), destination[1])
    assert rest == tail


@settings(max_examples=300, deadline=None)
@given(endpoints, st.binary(max_size=300), http, st.lists(st.integers(0, 800), max_size=8))
def test_v2_round_trip_with_tlvs(ends, tlvs, tail, cuts):
    source, destination = ends
    data = proxy_v2(source, destination, tlvs) + tail
    header, rest = feed_in_pieces(data, cuts)
    assert header.version == 2
    assert header.source == (canonical(source[0]), source[1])
    assert header.destination == (canonical(destination[0]), destination[1])
    assert rest == tail


def test_local_and_unknown_carry_no_address():
    local = ProxyHeaderParser().feed(proxy_v2(None) + b"GET")
    assert local == ProxyHeader(2, None, None, b"GET")
    unknown = ProxyHeaderParser().feed(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nGET")
    assert unknown == ProxyHeader(1, None, None, b"GET")


@pytest.mark.parametrize("data", [
    b"GET /v1/ws HTTP/1.1\r\n",                              # no header at all
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",                    # a field missing
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 x\r\n",              # one too many
    b"PROXY TCP4 ::1 5.6.7.8 80 443\r\n",                    # family and address disagree
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",               # leading zero
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n",             # port out of range
    b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n",               # two spaces
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n",                  # LF without CR
    b"PROXY TCP4 " + b"1" * 120,                             # no CRLF within 107 bytes
    V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12),   # version 1 in a v2 header
    V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12),   # unknown command
    V2_SIGNATURE + bytes([0x21, 0x41, 0, 12]) + bytes(12),   # unknown family
    V2_SIGNATURE + bytes([0x21, 0x11, 0, 4]) + bytes(4),     # block too short for INET
    V2_SIGNATURE + bytes([0x21, 0x11, 0xFF, 0xFF]),          # longer than we hold
])
def test_bad_headers_are_refused_with_the_typed_error(data):
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderParser().feed(data)


def test_an_early_byte_that_cannot_start_a_header_is_refused_at_once():
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderParser().feed(b"G")
    parser = ProxyHeaderParser()
    assert parser.feed(b"PRO") is None and parser.feed(b"XY TCP") is None
    assert ProxyHeaderParser().feed(b"\r\n\r") is None
    with pytest.raises(ProxyHeaderError):
        ProxyHeaderParser().feed(b"PROXZ")


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=80))
@example([V2_SIGNATURE, bytes([0x21, 0x11, 0x10, 0x00]), bytes(5000)])
@example([b"PROXY TCP6 ", b"::ffff:1.2.3.4 ::1 1 2\r\n"])
def test_garbage_only_ever_raises_the_typed_error_and_stays_bounded(chunks):
    parser = ProxyHeaderParser()
    for chunk in chunks:
        try:
            header = parser.feed(chunk)
        except ProxyHeaderError:
            return
        assert len(parser._buffer) <= MAX_HEADER_BYTES + 64  # noqa: SLF001
        if header is not None:
            return


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"PROXY ", V2_SIGNATURE]), st.binary(max_size=300))
def test_garbage_after_a_valid_start_only_raises_the_typed_error(start, tail):
    try:
        ProxyHeaderParser().feed(start + tail)
    except ProxyHeaderError:
        pass
