"""The proof-of-work puzzle's format, shared by the SDK, the siege and the shield.

Pure and keyless: the challenge token's layout, the work check and the solver, the admission
ticket (``/v1/ws?pow=<token>.<nonce>``) and the ``Pigeon-Challenge: <token> <difficulty>``
header. Issuing and authenticating tokens (the server's secret, expiry, replay protection)
stays in :mod:`pigeon.shield.pow`; docs/shield.md describes both halves.

A token is the unpadded URL-safe base64 of ``TOKEN_LAYOUT`` (version, issue time in
milliseconds since the epoch, difficulty, salt) followed by a ``MAC_SIZE``-byte MAC that only
the issuing server can check. A solution is a nonce such that
``sha256(token || nonce as 8 big-endian bytes)`` has ``difficulty`` leading zero bits.
"""

from __future__ import annotations

import hashlib
import re
import struct

__all__ = ["HEADER", "MAC_SIZE", "MAX_BITS", "MAX_TOKEN_LENGTH", "TICKET_PARAM", "TOKEN_LAYOUT",
           "TOKEN_SIZE", "TOKEN_VERSION", "WAITING_PARAM", "format_challenge", "format_ticket",
           "parse_challenge", "parse_ticket", "solve", "work_bits"]

MAX_BITS = 64  # beyond any sane setting; bounds a forged-looking token's claimed difficulty
MAX_TOKEN_LENGTH = 256  # the wire's limit (protocol.types.PowChallenge.token)

# version (1 byte) | issued, milliseconds since the epoch (8) | difficulty (1) | salt (12)
TOKEN_LAYOUT = struct.Struct(">BQB12s")
TOKEN_VERSION = 1
MAC_SIZE = 32  # HMAC-SHA256 under the server's secret
TOKEN_SIZE = TOKEN_LAYOUT.size + MAC_SIZE

HEADER = "Pigeon-Challenge"  # on a 503 to a rationed socket: "<token> <difficulty>"
TICKET_PARAM = "pow"  # the query parameter that carries a solved challenge at connect
# ``/v1/ws?waiting=1``: the device connecting has a call waiting (its user is chatting); a
# server taking back a herd lets a few such sockets a second past its return pacer (issue 13)
WAITING_PARAM = "waiting"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_NONCE = re.compile(r"[0-9]{1,20}")
_BITS = re.compile(r"[0-9]{1,2}")


def work_bits(token: str, nonce: int) -> int:
    """Leading zero bits of sha256(token || nonce as 8 big-endian bytes)."""
    digest = hashlib.sha256(token.encode() + nonce.to_bytes(8, "big")).digest()
    return 256 - int.from_bytes(digest, "big").bit_length()


def solve(token: str, difficulty: int) -> int:
    """Find a nonce giving ``difficulty`` leading zero bits; 0 when no work is asked.

    A plain CPU loop (about 2**difficulty hashes on average): call it in a thread.
    """
    if difficulty <= 0:
        return 0
    if difficulty > MAX_BITS:
        raise ValueError(f"difficulty {difficulty} is beyond {MAX_BITS} bits")
    base = hashlib.sha256(token.encode())
    bound = 1 << (256 - difficulty)  # a digest below this has enough leading zeros
    for nonce in range(1 << 64):
        h = base.copy()
        h.update(nonce.to_bytes(8, "big"))
        if int.from_bytes(h.digest(), "big") < bound:
            return nonce
    raise RuntimeError("no nonce found in 2**64 tries")  # pragma: no cover


def format_ticket(token: str, nonce: int) -> str:
    """The value of the ``pow`` query parameter: ``<token>.<nonce>``."""
    return f"{token}.{nonce}"


def parse_ticket(value: str) -> tuple[str, int] | None:
    """``(token, nonce)`` from a ``pow`` query value, or None if it is not one."""
    token, dot, nonce = value.rpartition(".")
    if not dot or not _TOKEN.fullmatch(token) or not _NONCE.fullmatch(nonce):
        return None
    number = int(nonce)
    return (token, number) if number < 1 << 64 else None


def format_challenge(token: str, difficulty: int) -> str:
    """The value of a ``Pigeon-Challenge`` header."""
    return f"{token} {difficulty}"


def parse_challenge(value: str | None) -> tuple[str, int] | None:
    """``(token, difficulty)`` from a ``Pigeon-Challenge`` header value, or None."""
    if not value:
        return None
    token, _, bits = value.strip().partition(" ")
    if not _TOKEN.fullmatch(token) or not _BITS.fullmatch(bits) or int(bits) > MAX_BITS:
        return None
    return token, int(bits)
