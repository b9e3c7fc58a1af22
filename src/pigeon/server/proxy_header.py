"""The PROXY protocol header (HAProxy, versions 1 and 2), sans I/O.

A load balancer that speaks the PROXY protocol writes one header before the client's bytes,
saying which address the client connected from. Spec: "The PROXY protocol, Versions 1 & 2"
(haproxy.org/download/2.9/doc/proxy-protocol.txt). Feed bytes in as they arrive; once the
header is complete :meth:`ProxyHeaderParser.feed` returns it, with whatever followed it in
``rest`` (the start of the HTTP request). Anything else is a :class:`ProxyHeaderError`, the
only exception ``feed`` raises for any input: the caller aborts the connection.

The buffer is bounded (``max_bytes``): a peer cannot make us hold more than that before the
header is complete or refused. A version-1 header is at most 107 bytes (spec §2.1); a
version-2 header may announce up to 64 KiB of TLVs, far more than any proxy sends for an
address, so it is refused past ``max_bytes``.

Only trusted peers may send this header (server/edge.py): from anyone else the same bytes are
just a malformed HTTP request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = [
    "MAX_HEADER_BYTES", "ProxyHeader", "ProxyHeaderError", "ProxyHeaderParser",
    "V1_MAX_BYTES", "V2_SIGNATURE",
]

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # spec §2.1: "a receiver ... never has to read more than 107 bytes"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length
MAX_HEADER_BYTES = 4096

# Address block sizes by family (spec §2.2): INET 4+4+2+2, INET6 16+16+2+2, UNIX 108+108.
_V2_INET, _V2_INET6, _V2_UNIX = 0x1, 0x2, 0x3
_V2_BLOCK = {0x0: 0, _V2_INET: 12, _V2_INET6: 36, _V2_UNIX: 216}


class ProxyHeaderError(ValueError):
    """The peer sent something that is not a valid PROXY header; ``reason`` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProxyHeader:
    """A complete header.

    ``source`` and ``destination`` are ``(address, port)`` of the client's connection to the
    proxy, or None when the header carries no IP address: version 2 ``LOCAL`` (the proxy's
    own health check), ``UNKNOWN`` in version 1, or a non-IP family. The caller then uses the
    real peer address, as the spec says. ``rest`` is what followed the header.
    """

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    rest: bytes = b""


class ProxyHeaderParser:
    """Bytes in, one :class:`ProxyHeader` out (see the module docstring)."""

    def __init__(self, max_bytes: int = MAX_HEADER_BYTES) -> None:
        if max_bytes < V1_MAX_BYTES:
            raise ValueError(f"max_bytes must be at least {V1_MAX_BYTES}")
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._done = False

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Add bytes; the header once complete, None while more are needed."""
        if self._done:
            raise RuntimeError("the header was already parsed; pass further bytes on")
        self._buffer += data
        buffer = self._buffer
        probe = bytes(buffer[:len(V2_SIGNATURE)])
        if V2_SIGNATURE.startswith(probe):
            header = self._v2()
        elif V1_PREFIX.startswith(probe[:len(V1_PREFIX)]):
            header = self._v1()
        else:
            raise ProxyHeaderError("not a PROXY protocol header")
        if header is not None:
            self._done = True
            self._buffer = bytearray()
        elif len(buffer) > self.max_bytes:
            raise ProxyHeaderError(f"PROXY header longer than {self.max_bytes} bytes")
        return header

    # -- version 1: one line of text ------------------------------------------------------
    def _v1(self) -> ProxyHeader | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n", 0, V1_MAX_BYTES)
        if end < 0:
            if len(buffer) >= V1_MAX_BYTES or b"\n" in buffer:
                raise ProxyHeaderError("PROXY v1 line without CRLF within 107 bytes")
            return None
        line = bytes(buffer[:end])
        rest = bytes(buffer[end + 2:])
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
        parts = text.split(" ")
        if len(parts) >= 2 and parts[1] == "UNKNOWN":
            return ProxyHeader(1, None, None, rest)  # the rest of the line is ignored (§2.1)
        if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
            raise ProxyHeaderError("PROXY v1 line must be 'PROXY TCP4|TCP6 src dst sport dport'")
        version = 4 if parts[1] == "TCP4" else 6
        source = (_v1_address(parts[2], version), _v1_port(parts[4]))
        destination = (_v1_address(parts[3], version), _v1_port(parts[5]))
        return ProxyHeader(1, source, destination, rest)

    # -- version 2: binary ----------------------------------------------------------------
    def _v2(self) -> ProxyHeader | None:
        buffer = self._buffer
        if len(buffer) < V2_FIXED:
            return None
        version, command = buffer[12] >> 4, buffer[12] & 0x0F
        family, transport = buffer[13] >> 4, buffer[13] & 0x0F
        length = int.from_bytes(buffer[14:16], "big")
        if version != 2:
            raise ProxyHeaderError(f"PROXY v2 header with version {version}")
        if command not in (0x0, 0x1):
            raise ProxyHeaderError(f"PROXY v2 header with unknown command {command}")
        if family not in _V2_BLOCK or transport > 0x2:
            raise ProxyHeaderError("PROXY v2 header with unknown address family or transport")
        if V2_FIXED + length > self.max_bytes:
            raise ProxyHeaderError(f"PROXY v2 header of {V2_FIXED + length} bytes is too long")
        if len(buffer) < V2_FIXED + length:
            return None
        block = bytes(buffer[V2_FIXED:V2_FIXED + length])
        rest = bytes(buffer[V2_FIXED + length:])
        if length < _V2_BLOCK[family]:
            raise ProxyHeaderError("PROXY v2 address block shorter than its family needs")
        # LOCAL: the proxy's own connection (a health check); addresses are to be ignored.
        # UNSPEC and UNIX carry no IP address. TLVs after the block are skipped (§2.2.7).
        if command == 0x0 or family not in (_V2_INET, _V2_INET6):
            return ProxyHeader(2, None, None, rest)
        size = 4 if family == _V2_INET else 16
        src = ipaddress.ip_address(block[:size])
        dst = ipaddress.ip_address(block[size:2 * size])
        sport = int.from_bytes(block[2 * size:2 * size + 2], "big")
        dport = int.from_bytes(block[2 * size + 2:2 * size + 4], "big")
        return ProxyHeader(2, (str(src), sport), (str(dst), dport), rest)


def _v1_address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 header with a bad address {text[:48]!r}") from None
    if address.version != version or "%" in text:
        raise ProxyHeaderError(f"PROXY v1 address {text[:48]!r} is not IPv{version}")
    return str(address)


def _v1_port(text: str) -> int:
    # Decimal, 0..65535, no sign and no leading zero (spec §2.1).
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (
            len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"PROXY v1 header with a bad port {text[:8]!r}")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"PROXY v1 port {port} is out of range")
    return port
