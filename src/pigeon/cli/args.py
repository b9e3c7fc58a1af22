"""What people type on the command line that is parsed before anything is sent: server URLs.

Issue 11, bug 6: ``--server htp:/bad`` was taken for a host named ``htp`` and failed as
"server unreachable" (exit 3). A server URL is now checked first and a bad one is a usage
error (exit 2).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

SCHEMES = ("http", "https", "ws", "wss")
# A DNS name (RFC 1123 labels) or an IPv4 address; IPv6 addresses come in brackets.
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


class BadServerUrl(ValueError):
    """The message says what is wrong and what a good URL looks like."""


def server_url(raw: str) -> str:
    """``raw`` as the server URL to store: ``http(s)://`` or ``ws(s)://`` with a host and
    optionally a port and the ``/v1/ws`` path; ``HOST[:PORT]`` alone means ``http://``."""
    text = raw.strip()
    example = "write it like http://127.0.0.1:8700 or https://chat.example.org"
    if not text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise BadServerUrl(f"{raw!r} is not a server URL: {example}")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        raise BadServerUrl(f"{raw!r} is not a server URL (bad port): {example}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise BadServerUrl(f"{raw!r} is not a server URL: the scheme must be one of "
                           f"{', '.join(SCHEMES)}; {example}")
    host = parts.hostname or ""
    if not _valid_host(host, bracketed="[" in parts.netloc):
        raise BadServerUrl(f"{raw!r} is not a server URL (no valid host): {example}")
    if parts.username is not None or parts.query or parts.fragment:
        raise BadServerUrl(f"{raw!r} is not a server URL (no user, query or fragment): "
                           f"{example}")
    if parts.path.rstrip("/") not in ("", "/v1/ws"):
        raise BadServerUrl(f"{raw!r} is not a server URL (the only path is /v1/ws): {example}")
    if port == 0:
        raise BadServerUrl(f"{raw!r} is not a server URL (port 0): {example}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def _valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return bool(_HOSTNAME.fullmatch(host)) and len(host) <= 253


class BadMessageId(ValueError):
    """The message says what a message id looks like."""


MAX_MESSAGE_ID = 2**62  # as the protocol bounds ids (types.ID)


def message_id(raw: str) -> int:
    """A message id as the CLI prints it (``#12``) or bare (``12``): 1 to 2**62."""
    digits = raw.strip().removeprefix("#")
    # "²" and "١" are digits to isdigit but not ids anyone meant; int() accepts "1_0".
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_MESSAGE_ID:
        raise BadMessageId(f"{raw!r} is not a message id: write it as printed, like #12 or 12")
    return int(digits)


class BadSpan(ValueError):
    """The message says what a span of time looks like."""


SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SPAN = 366 * 86400  # longer than a year: mute for ever instead
_SPAN = re.compile(r"(\d{1,6})([smhdw])")


def span(raw: str) -> int:
    """``90s``, ``30m``, ``8h``, ``2d`` or ``1w`` (and sums such as ``1h30m``) in seconds:
    at least a second, at most a year."""
    text = raw.strip().lower()
    parts = _SPAN.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise BadSpan(f"{raw!r} is not a span of time: write it like 30m, 8h, 2d or 1h30m")
    seconds = sum(int(n) * SPAN_UNITS[u] for n, u in parts)
    if not 1 <= seconds <= MAX_SPAN:
        raise BadSpan(f"{raw!r} is not between a second and a year (leave --for out to mute "
                      "for ever)")
    return seconds


class BadTtl(ValueError):
    """A self-destruct timer that is not ``30s``, ``5m``, ``1h``, ``2d`` (or ``off``)."""


TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 7 * 86400
_TTL = re.compile(r"([0-9]{1,7})([smhd])")


def ttl(raw: str, *, allow_off: bool = False) -> int | None:
    """``30s``, ``5m``, ``1h`` or ``2d`` in seconds, from 1 second to 1 week; ``off`` (where
    allowed) is None: no timer."""
    text = raw.strip().lower()
    if allow_off and text == "off":
        return None
    match = _TTL.fullmatch(text)
    if match is None:
        off = " or off" if allow_off else ""
        raise BadTtl(f"{raw!r} is not a timer: write it like 30s, 5m, 1h or 2d{off}")
    seconds = int(match[1]) * TTL_UNITS[match[2]]
    if not 1 <= seconds <= MAX_TTL:
        raise BadTtl(f"{raw!r} is not between 1 second and 1 week")
    return seconds
