"""Proof-of-work tickets at accept: how a rationed newcomer gets its socket in.

While the shield rations new sockets from unknown addresses (docs/shield.md, layer 1), a
refused socket is not simply dropped: the shield reads its HTTP request line, and

* if the request target carries a solved challenge, ``/v1/ws?pow=<token>.<nonce>``, the
  socket skips the ration (the ticket is single-use and expires like any challenge);
* otherwise it answers ``503`` with a fresh challenge in a ``Pigeon-Challenge: <token>
  <difficulty>`` header and closes. The SDK solves it and connects again with the ticket.

A flood that does not solve challenges costs the server one short read and one short write
per socket (no HTTP parser, no WebSocket); a newcomer pays a fraction of a second of work.
These functions are the pure part: parsing and formatting, no sockets.
"""

from __future__ import annotations

# The format (ticket, header, solver) is the protocol's; the SDK reads it from there.
from pigeon.protocol.pow import (
    HEADER, TICKET_PARAM, WAITING_PARAM, format_challenge, format_ticket, parse_challenge,
    parse_ticket,
)

__all__ = ["HEADER", "MAX_REQUEST_LINE", "challenge_response", "format_ticket", "parse_challenge",
           "refusal_response", "ticket_in_request", "waiting_in_request"]

MAX_REQUEST_LINE = 2048  # bytes read, at most, before the request line must be complete
_PARAM = TICKET_PARAM.encode("ascii")
_WAITING = WAITING_PARAM.encode("ascii")


def _query_value(head: bytes, param: bytes) -> bytes | None:
    """The value of ``param`` in an HTTP request's first line's query, or None. ``head`` is
    what the socket sent so far; only its first line is read."""
    line, _, _ = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    _, _, query = parts[1].partition(b"?")
    for pair in query.split(b"&"):
        name, eq, value = pair.partition(b"=")
        if eq and name == param:
            return value
    return None


def ticket_in_request(head: bytes) -> tuple[str, int] | None:
    """The ticket in an HTTP request's first line (``GET /v1/ws?pow=T.N HTTP/1.1``), or
    None."""
    value = _query_value(head, _PARAM)
    if value is None:
        return None
    try:
        return parse_ticket(value.decode("ascii"))
    except UnicodeDecodeError:
        return None


def waiting_in_request(head: bytes) -> bool:
    """Whether the request says its device has a call waiting (``?waiting=1``)."""
    return _query_value(head, _WAITING) == b"1"


def challenge_response(token: str, difficulty: int, retry_after: int = 1) -> bytes:
    """The whole HTTP answer to a rationed socket that brought no valid ticket."""
    return (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
            f"{HEADER}: {format_challenge(token, difficulty)}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n").encode("ascii")


def refusal_response(retry_after: int) -> bytes:
    """The whole HTTP answer to a socket refused at an admission cap: come back later."""
    return (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n").encode("ascii")
