"""Admission at accept: how many connections one address, one prefix and everyone may hold.

The caller asks :meth:`Admission.admit` for every accepted connection *before* it reads a
byte, and closes the connection at once when the answer is a refusal. Nothing here touches a
socket: a :class:`Ticket` is a token for one connection, with a ``handle`` slot the caller
fills with whatever closes that connection.

Two pools:

* **unauthenticated** connections (no session yet) are capped per address, per prefix
  (/24 for IPv4, /64 for IPv6) and as a pool. When the pool is full a newcomer is still
  admitted, and a *random* unauthenticated connection is chosen for the caller to close:
  random early drop. An attacker who fills the pool with idle connections owns most of it,
  so most evictions land on the attacker, while a legitimate client that authenticates in
  a few hundred milliseconds leaves the pool before its number comes up. A plain "refuse
  when full" would let the same attacker keep everyone out for as long as it likes.
  A newcomer signing up stays in the pool for longer (a code, a sign-in): a connection that
  is busy signing up, or brought solved proof of work, is spared for a while
  (``protected_until``, set by the caller), so the random choice passes over it unless
  nearly the whole pool is spared.
* **authenticated** connections are never evicted and do not count against the
  unauthenticated pool, nor against the per-address and per-prefix caps: a school, an
  office or a carrier-grade NAT puts thousands of real users behind one address, and once
  they have proved who they are, per-account rate limits (``ratelimit.py``) and the total
  cap are the right tools, not their neighbour's address. The total cap (``max_total``)
  still bounds memory and descriptors for everyone.
"""

from __future__ import annotations

import functools
import ipaddress
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Admission", "Decision", "Ticket", "prefix_of"]

REFUSAL_REASONS = ("per_address", "per_prefix", "total")


def prefix_of(address: str) -> str:
    """The network an address is grouped with: its /24 (IPv4) or /64 (IPv6).

    ``"127.1.2.3"`` -> ``"127.1.2.0/24"``; ``"2001:db8::1"`` -> ``"2001:db8::/64"``. An
    IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4 peer) is grouped
    as the IPv4 address it is. Anything that is not an address (a Unix socket path, a test
    name) is its own prefix, so it is still capped, just never grouped with others.
    """
    return _prefix_cached(address)


@functools.lru_cache(maxsize=65536)
def _prefix_cached(address: str) -> str:
    # Cached: the same addresses come back for every connection and call, and ipaddress
    # parsing showed up at 5% of a flooded server's CPU. The cache is bounded.
    head, dot, last = address.rpartition(".")
    if dot and ":" not in address and last.isdigit() and head.count(".") == 2 and all(
            part.isdigit() and str(int(part)) == part and int(part) < 256
            for part in (*head.split("."), last)):
        return f"{head}.0/24"  # the common case, without building ipaddress objects
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass(eq=False)
class Ticket:
    """One admitted connection. ``handle`` belongs to the caller (e.g. the transport to close
    when this ticket is evicted); Admission never looks at it."""

    address: str
    prefix: str
    authenticated: bool = False
    handle: Any = None
    protected_until: float = 0.0  # spared by random early drop until then (solved work)
    paced: bool = False  # a known address's handshake that the return pacer counts (pacing.py)
    open: bool = field(default=True, init=False)
    # Position in Admission's unauthenticated list, for O(1) random choice and removal.
    _slot: int = field(default=-1, init=False, repr=False)


@dataclass(frozen=True)
class Decision:
    """The answer to :meth:`Admission.admit`.

    ``ticket`` is None when refused, and ``reason`` then says which cap was hit
    (``"per_address"``, ``"per_prefix"`` or ``"total"``). ``evict``, when set, is an
    unauthenticated connection the caller must close to make room (already released here).
    """

    ticket: Ticket | None
    reason: str | None = None
    evict: Ticket | None = None
    retry_after: float | None = None  # a refusal's own Retry-After (the return pacer's slot)

    @property
    def admitted(self) -> bool:
        return self.ticket is not None


class Admission:
    """Connection caps at accept time; see the module docstring for the policy."""

    def __init__(
        self,
        max_per_address: int = 64,
        max_per_prefix: int = 256,
        max_unauthenticated: int = 2000,
        max_total: int = 20000,
        rng: random.Random | None = None,
    ) -> None:
        if min(max_per_address, max_per_prefix, max_unauthenticated, max_total) < 1:
            raise ValueError("every admission cap must be at least 1")
        self.max_per_address = max_per_address
        self.max_per_prefix = max_per_prefix
        self.max_unauthenticated = max_unauthenticated
        self.max_total = max_total
        self.rng = rng if rng is not None else random.Random()
        self._unauthenticated: list[Ticket] = []
        self._authenticated = 0
        # Counts of *unauthenticated* tickets only; a key is deleted when it drops to zero,
        # so these hold at most max_unauthenticated entries whatever the attacker sends.
        self._per_address: Counter[str] = Counter()
        self._per_prefix: Counter[str] = Counter()
        self._admitted = 0
        self._evicted = 0
        self._refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)

    # -- the three operations ------------------------------------------------------------
    def admit(self, address: str, now: float = 0.0) -> Decision:
        prefix = prefix_of(address)
        reason = self._refusal(address, prefix)
        if reason is not None:
            self._refused[reason] += 1
            return Decision(None, reason)
        evict = None
        if len(self._unauthenticated) >= self.max_unauthenticated:
            evict = self._victim(now)
            self.release(evict)
            self._evicted += 1
        ticket = Ticket(address, prefix)
        self._add_unauthenticated(ticket)
        self._admitted += 1
        return Decision(ticket, None, evict)

    def promote(self, ticket: Ticket) -> None:
        """The connection authenticated: it leaves the unauthenticated pool for good."""
        if not ticket.open or ticket.authenticated:
            return
        self._remove_unauthenticated(ticket)
        ticket.authenticated = True
        self._authenticated += 1

    def release(self, ticket: Ticket) -> None:
        """The connection closed. Safe to call twice, and for an evicted ticket."""
        if not ticket.open:
            return
        if ticket.authenticated:
            self._authenticated -= 1
        else:
            self._remove_unauthenticated(ticket)
        ticket.open = False

    # -- reading ---------------------------------------------------------------------------
    @property
    def open(self) -> int:
        return self._authenticated + len(self._unauthenticated)

    @property
    def unauthenticated(self) -> int:
        return len(self._unauthenticated)

    def stats(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "unauthenticated": self.unauthenticated,
            "authenticated": self._authenticated,
            "admitted": self._admitted,
            "refused": dict(self._refused),
            "evicted": self._evicted,
            "addresses": len(self._per_address),
            "prefixes": len(self._per_prefix),
        }

    # -- internals -------------------------------------------------------------------------
    def _victim(self, now: float) -> Ticket:
        """A random unauthenticated connection, passing over spared ones: a few draws, so
        the cost stays O(1); if every draw is spared, the pool is nearly all newcomers who
        solved work, and one of them has to go."""
        pool = self._unauthenticated
        for _ in range(4):
            victim = pool[self.rng.randrange(len(pool))]
            if victim.protected_until <= now:
                break
        return victim

    def _refusal(self, address: str, prefix: str) -> str | None:
        # Most specific first, so the refusal counters point at the narrowest culprit.
        if self._per_address[address] >= self.max_per_address:
            return "per_address"
        if self._per_prefix[prefix] >= self.max_per_prefix:
            return "per_prefix"
        # Unauthenticated connections never fill the total on their own (they evict each
        # other first) unless max_unauthenticated >= max_total; a full total means that
        # many logged-in users, and evicting one of them would be worse than refusing.
        if self.open >= self.max_total:
            return "total"
        return None

    def _add_unauthenticated(self, ticket: Ticket) -> None:
        ticket._slot = len(self._unauthenticated)
        self._unauthenticated.append(ticket)
        self._per_address[ticket.address] += 1
        self._per_prefix[ticket.prefix] += 1

    def _remove_unauthenticated(self, ticket: Ticket) -> None:
        # Swap with the last element and pop: O(1), order does not matter for random drop.
        pool = self._unauthenticated
        last = pool.pop()
        if last is not ticket:
            pool[ticket._slot] = last
            last._slot = ticket._slot
        ticket._slot = -1
        _decrement(self._per_address, ticket.address)
        _decrement(self._per_prefix, ticket.prefix)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
