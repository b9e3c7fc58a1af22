"""A minimal WebSocket client, sans I/O, and Pigeon's frames for it.

Attackers need thousands of cheap connections and the freedom to send what no SDK would:
half a request, half a frame, garbage. aiohttp's client does neither cheaply, so the siege
speaks RFC 6455 itself: build the upgrade request, parse the response head, mask outgoing
frames, cut incoming bytes into frames. Nothing here touches a socket (the h11 pattern).
"""

from __future__ import annotations

import base64
import os
import struct
from typing import Any

import msgspec

from pigeon.protocol import errors, frames, websocket

from pigeon.protocol.websocket import (  # noqa: F401 (the siege names them from here)
    OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
)
MAX_INCOMING_FRAME = 1 << 20  # the server's frames are at most 64 KiB; anything far bigger is a bug


class WireError(Exception):
    """The server's bytes are not what RFC 6455 allows."""


def handshake_request(host: str, port: int, path: str = "/v1/ws",
                      key: bytes | None = None) -> bytes:
    key = key or os.urandom(16)
    return (f"GET {path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(key).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n").encode()


def response_status(head: bytes) -> int:
    """The status code of an HTTP response head (``HTTP/1.1 101 Switching Protocols``)."""
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        raise WireError(f"not an HTTP response: {head[:40]!r}")
    return int(line[1])


def retry_after(head: bytes) -> float | None:
    """The Retry-After of an HTTP response head, in seconds, if it has one."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"retry-after":
            try:
                return min(max(float(value.strip()), 0.0), 3600.0)
            except ValueError:
                return None
    return None


def encode_frame(payload: bytes, opcode: int = OP_BINARY, *, fin: bool = True,
                 mask: bytes | None = None) -> bytes:
    """One client frame (clients must mask, RFC 6455 §5.3): a random key unless given."""
    return websocket.encode_frame(payload, opcode, fin=fin,
                                  mask=mask if mask is not None else os.urandom(4))


class FrameParser:
    """Feed bytes, get whole frames ``(opcode, payload)``; fragments are joined."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_op = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames: list[tuple[int, bytes]] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> tuple[int, bytes] | None:
        while True:
            buf = self._buf
            if len(buf) < 2:
                return None
            fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
            masked, n = buf[1] & 0x80, buf[1] & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    return None
                n, pos = struct.unpack_from("!H", buf, 2)[0], 4
            elif n == 127:
                if len(buf) < 10:
                    return None
                n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
            if n > MAX_INCOMING_FRAME:
                raise WireError(f"incoming frame of {n} bytes")
            key = b""
            if masked:
                if len(buf) < pos + 4:
                    return None
                key, pos = bytes(buf[pos:pos + 4]), pos + 4
            if len(buf) < pos + n:
                return None
            payload = bytes(buf[pos:pos + n])
            del buf[:pos + n]
            if key:
                payload = websocket.apply_mask(payload, key)
            if opcode >= 0x8:  # control frames may sit between fragments
                return opcode, payload
            if opcode != OP_CONT:
                self._fragment_op = opcode
                self._fragments = []
            self._fragments.append(payload)
            if fin:
                whole = b"".join(self._fragments)
                self._fragments = []
                return self._fragment_op, whole


# -- Pigeon frames (docs/protocol.md) ----------------------------------------------------------
# Well-formed frames come from the protocol package's own structs, so the siege cannot drift
# from the wire; ``pack`` is the escape hatch for the junk attack's deliberately malformed
# frames, and ``decode`` reads the server's frames as plain maps (an attacker only counts them).
_decode = msgspec.msgpack.Decoder().decode
SIEGE_VERSION = 1  # attackers and legit users read version 1's frames


def hello(token: str | None = None, client: str = "pigeon-siege",
          ticket: str | None = None) -> bytes:
    return frames.encode(frames.Hello(versions=[SIEGE_VERSION], client=client, token=token,
                                      ticket=ticket))


def call(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    """A call frame; ``params`` go out as given (the junk attack sends ill-typed ones)."""
    return frames.encode(frames.Call(id=request_id, method=method,
                                     params=msgspec.Raw(frames.encode(params))))


def pack(obj: Any) -> bytes:
    """Any MessagePack value as a frame: for frames that the protocol's structs cannot build."""
    return frames.encode(obj)


def decode(payload: bytes) -> dict[str, Any] | None:
    """A server frame as a map, or None if it is not one."""
    try:
        frame = _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return frame if isinstance(frame, dict) else None


def is_refusal(code: str) -> bool:
    """The server did not run this call (the ``not_run`` fact of ``errors.ERROR_CODES``):
    anything else (a result, CODE_INVALID, PHONE_INVALID ...) means the method ran."""
    return code in errors.NOT_RUN_CODES
