"""Where a client really comes from, when a reverse proxy or load balancer sits in front.

Behind a proxy every connection comes from the proxy's address, so limits and bans per
address would treat all of its clients as one. Two ways to learn the client's address, both
honoured only from peers in ``trusted_proxies`` (nothing is trusted by default: anyone can
write a header):

* the PROXY protocol (``proxy_protocol = true``, server/proxy_header.py): a trusted peer must
  open with a PROXY v1 or v2 header, read at accept before aiohttp parses a byte; the shield's
  admission then sees the client's address;
* ``X-Forwarded-For``: read from the HTTP request. Each proxy appends the address it got the
  request from, so the list is only as honest as its right end: walking from the right, every
  hop that is itself a trusted proxy is skipped, and the first one that is not is the client
  (the rightmost untrusted hop; whatever the client wrote further left is ignored).

Pure functions and one small class; no sockets.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

__all__ = ["Edge", "normalize", "parse_networks", "forwarded_client"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A header longer than this is not a proxy chain but someone's attempt to make us parse.
MAX_FORWARDED_HOPS = 64


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 2001:db8::/32, 192.0.2.7"`` -> networks; ValueError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an address or CIDR network: {item!r}") from None
    return tuple(networks)


def normalize(address: str) -> str:
    """The canonical text of an IP address (an IPv4-mapped IPv6 address as IPv4, no zone);
    anything that is not an IP address comes back unchanged."""
    return _normalize(address)


@functools.lru_cache(maxsize=65536)
def _normalize(address: str) -> str:
    ip = _ip(address)
    return address if ip is None else str(ip)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _hop(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One X-Forwarded-For element: an address, or ``[v6]:port`` / ``v4:port`` as some proxies
    write it. None when it is not an address (``unknown``, an obfuscated name, garbage)."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        return _ip(text[1:close]) if close > 0 else None
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return _ip(text)


def forwarded_client(peer: str, headers: Iterable[str],
                     trusted: tuple[Network, ...]) -> str:
    """The client's address from the X-Forwarded-For header values (in the order received),
    given the ``peer`` that sent the request. The peer itself is returned when it is not a
    trusted proxy or when the header is missing; when a hop is not an address (a misconfigured
    proxy) the last trusted hop before it, rather than a guess."""
    if not _is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for value in headers:
        hops.extend(value.split(","))
        if len(hops) > MAX_FORWARDED_HOPS:
            hops = hops[-MAX_FORWARDED_HOPS:]  # only the right end can be believed anyway
    client = peer
    for text in reversed(hops):
        ip = _hop(text)
        if ip is None:
            return client  # the last trusted hop wrote garbage: it is the best we know
        client = str(ip)
        if not _in(ip, trusted):
            return client
    return client  # every hop was a trusted proxy: the leftmost is the best we know


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    if not trusted:
        return False
    ip = _ip(address)
    return ip is not None and _in(ip, trusted)


def _in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


class Edge:
    """The server's view of its proxies: which peers are trusted, and whether they speak the
    PROXY protocol (then they must) or only set X-Forwarded-For."""

    def __init__(self, trusted_proxies: str | Iterable[str] = "",
                 proxy_protocol: bool = False) -> None:
        self.networks = parse_networks(trusted_proxies)
        self.proxy_protocol = proxy_protocol
        self._trusted = functools.lru_cache(maxsize=4096)(self._check)

    def _check(self, address: str) -> bool:
        return _is_trusted(address, self.networks)

    def trusted(self, address: str) -> bool:
        return bool(self.networks) and self._trusted(address)

    def client(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The request's client address: ``peer`` unless it is a trusted proxy that said
        otherwise in X-Forwarded-For."""
        if not self.trusted(peer):
            return peer
        return forwarded_client(peer, forwarded_for, self.networks)
