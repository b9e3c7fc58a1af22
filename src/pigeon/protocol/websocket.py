"""WebSocket frames as bytes (RFC 6455 §5.2), sans I/O: what the server writes itself on its
last words to a socket (server/app.py, a planned stop) and what the siege's raw clients send
(siege/wire.py). A server's frames are not masked; a client's are (§5.3)."""

from __future__ import annotations

import struct

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(payload: bytes, opcode: int = OP_BINARY, *, fin: bool = True,
                 mask: bytes | None = None) -> bytes:
    """One frame: unmasked (a server's) when ``mask`` is None, else masked with its 4 bytes."""
    first = (0x80 if fin else 0) | opcode
    masked = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, masked | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, masked | 126, n)
    else:
        header = struct.pack("!BBQ", first, masked | 127, n)
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key repeated (masking and unmasking are the same)."""
    if not payload:
        return b""
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
