"""The resumption ticket's format: what lets a known session come back without a database read.

Pure and keyless, like :mod:`.pow`: the layout, formatting and parsing. Signing and checking
(the server's secret, expiry, the live sessions, revocation) stay in
:mod:`pigeon.shield.resumption`; docs/shield.md ("Reconnect storms") describes both halves.

A ticket is ``pgr1.`` followed by the unpadded URL-safe base64 of ``CLAIMS_LAYOUT`` (session
id, user id, expiry in whole seconds since the epoch) and a ``MAC_SIZE``-byte MAC that only
the issuing server can check. To a client it is opaque: it keeps the last one it was given
and presents it, with its session token, in ``hello`` (docs/protocol.md).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from typing import NamedTuple

__all__ = ["CLAIMS_LAYOUT", "MAC_SIZE", "MAX_TICKET_CHARS", "PREFIX", "Claims", "format_ticket",
           "parse_ticket"]

PREFIX = "pgr1."
# session id (8 bytes) | user id (8) | expires, seconds since the epoch (8)
CLAIMS_LAYOUT = struct.Struct(">QQQ")
MAC_SIZE = 32  # HMAC-SHA256
_BODY = CLAIMS_LAYOUT.size + MAC_SIZE
# 56 bytes are 75 characters of unpadded base64; the wire allows some room to grow.
MAX_TICKET_CHARS = 128
_SHAPE = re.compile(r"pgr1\.[A-Za-z0-9_-]{75}")


class Claims(NamedTuple):
    session_id: int
    user_id: int
    expires: int  # seconds since the epoch

    def encode(self) -> bytes:
        """The signed bytes (struct.error if a field does not fit in 64 unsigned bits)."""
        return CLAIMS_LAYOUT.pack(self.session_id, self.user_id, self.expires)


def format_ticket(claims: Claims, mac: bytes) -> str:
    if len(mac) != MAC_SIZE:
        raise ValueError(f"a ticket's MAC is {MAC_SIZE} bytes, not {len(mac)}")
    body = base64.urlsafe_b64encode(claims.encode() + mac).rstrip(b"=").decode("ascii")
    return PREFIX + body


def parse_ticket(text: str) -> tuple[Claims, bytes] | None:
    """The claims and MAC of a well-formed ticket, or None for anything else: a ticket is
    only ever a shortcut, so a malformed one is not an error, just the long way round."""
    if len(text) > MAX_TICKET_CHARS or not _SHAPE.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text[len(PREFIX):] + "=")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _BODY:
        return None
    claims = Claims(*CLAIMS_LAYOUT.unpack(raw[:CLAIMS_LAYOUT.size]))
    return claims, raw[CLAIMS_LAYOUT.size:]
