"""Tickets at accept: parsing what a rationed socket sends, formatting what it is told."""

from hypothesis import given
from hypothesis import strategies as st

from pigeon.shield.ticket import (
    challenge_response, format_ticket, parse_challenge, ticket_in_request,
)


def test_a_ticket_in_the_request_line():
    head = b"GET /v1/ws?pow=" + format_ticket("AbC-_9", 42).encode() + b" HTTP/1.1\r\nHost: x\r\n"
    assert ticket_in_request(head) == ("AbC-_9", 42)
    assert ticket_in_request(b"GET /v1/ws?a=1&pow=tok.7 HTTP/1.1\r\n") == ("tok", 7)
    for bad in (b"GET /v1/ws HTTP/1.1\r\n", b"GET /v1/ws?pow=tok HTTP/1.1\r\n",
                b"GET /v1/ws?pow=.5 HTTP/1.1\r\n", b"GET /v1/ws?pow=t!k.5 HTTP/1.1\r\n",
                b"GET /v1/ws?pow=tok.99999999999999999999 HTTP/1.1\r\n",
                b"GET /v1/ws?pow=tok.5\r\n", b"\xff\xfe?pow=tok.5 HTTP/1.1", b""):
        assert ticket_in_request(bad) is None, bad


def test_the_challenge_round_trips():
    response = challenge_response("tok_en-1", 18)
    assert response.startswith(b"HTTP/1.1 503 ") and response.endswith(b"\r\n\r\n")
    header = next(line for line in response.split(b"\r\n")
                  if line.startswith(b"Pigeon-Challenge: "))
    assert parse_challenge(header.split(b": ", 1)[1].decode()) == ("tok_en-1", 18)
    for bad in (None, "", "tok", "tok x", "tok 99", "t k 1", "tok ²"):
        assert parse_challenge(bad) is None


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_not_but_never_raise(head):
    found = ticket_in_request(head)
    assert found is None or (isinstance(found[0], str) and 0 <= found[1] < 2**64)


@given(st.text(max_size=100))
def test_any_header_parses_or_not_but_never_raises(value):
    found = parse_challenge(value)
    assert found is None or 0 <= found[1] <= 64
