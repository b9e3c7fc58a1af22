"""What the shield remembers, behind an interface: one process's memory today, shared by
every worker of a deployment later (issue 12: NATS KV or PostgreSQL).

The shield's state is five things: the **limiters** (token buckets per session, account,
address, prefix, number...), the **bans** (addresses and prefixes, sessions, accounts), the
**known addresses** (where logged-in sessions came from), the **proof-of-work replay set**
(solutions already spent) and the **HMAC secret** (which signs challenges, and login codes'
hashes). :class:`ShieldState` hands them out; :class:`MemoryShieldState` keeps them in this
process, as the shield always has.

Every question the shield asks of its state is synchronous and answered from memory: the
shield sits on the path of every frame, call and accepted socket, and one round trip per
frame to a shared store would cost more than the work it protects. A shared implementation
keeps that **local fast path**: it answers from a local copy, and spreads what changed
(a ban, spent tokens, charged buckets) to the other workers in the background, from
:meth:`ShieldState.start`'s tasks, converging within its propagation delay. I/O happens in
the two async methods only: :meth:`~ShieldState.start` (connect, load the secret and the
live bans) and :meth:`~ShieldState.stop` (flush). What may slip through meanwhile is
bounded by the worker count (a token spent once per worker, a bucket's burst per worker),
the same bound docs/shield.md already states for several processes sharing a secret.
A ban learnt from another worker must also close this worker's connections that it shuts
out: the shared state applies it through the same ban list, then calls the callbacks the
server wired on :class:`~.penalties.Penalties` (``on_address_ban``, ``on_session_ban``,
``on_account_ban``), as a local strike does.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from typing import Protocol

from .admission import prefix_of
from .bans import BanList, Mirror
from .codebudget import AdaptiveBudget
from .ratelimit import Clock, KeyedLimiter, Rate

__all__ = ["Bans", "KnownAddresses", "Limiter", "MemoryShieldState", "ReplaySet",
           "ShieldState", "SpentTokens"]


class Limiter(Protocol):
    """Token buckets by key (:class:`~.ratelimit.KeyedLimiter`)."""

    rate: Rate

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` from ``key``'s bucket: 0 if it had it, else seconds to wait."""

    def charge(self, key: str, cost: float) -> None:
        """Spend ``cost`` whatever is left (the bucket may go into debt)."""

    def __len__(self) -> int: ...


class Bans(Protocol):
    """Strikes in, bans out (:class:`~.bans.BanList`)."""

    strikes: int

    def strike(self, address: str, reason: str = "limit", needed: float | None = None) -> float: ...

    def ban(self, target: str, seconds: float | None = None, reason: str = "manual") -> str: ...

    def unban(self, target: str) -> bool: ...

    def banned(self, address: str) -> float: ...

    def check(self, address: str) -> None: ...

    def stats(self) -> dict[str, object]: ...

    #: called when a ban learnt from another worker starts here (target, seconds), so that
    #: what it shuts out is closed as after a local strike (Penalties wires it)
    on_remote_ban: Callable[[str, float], None] | None


class KnownAddresses:
    """Addresses that logged-in sessions came from, least recently seen forgotten first past
    ``max_addresses``, and how many of them each /24 or /64 holds (a prefix ban that would
    shut them out stays out of the kernel)."""

    def __init__(self, max_addresses: int) -> None:
        if max_addresses < 1:
            raise ValueError("max_addresses must be positive")
        self.max_addresses = max_addresses
        self._addresses: OrderedDict[str, None] = OrderedDict()
        self._prefixes: Counter[str] = Counter()

    def remember(self, address: str) -> None:
        known = self._addresses
        if address in known:
            known.move_to_end(address)
            return
        known[address] = None
        self._prefixes[prefix_of(address)] += 1
        if len(known) > self.max_addresses:
            gone, _ = known.popitem(last=False)
            prefix = prefix_of(gone)
            self._prefixes[prefix] -= 1
            if self._prefixes[prefix] <= 0:
                del self._prefixes[prefix]

    def holds_prefix(self, prefix: str) -> bool:
        return self._prefixes.get(prefix, 0) > 0

    def __contains__(self, address: object) -> bool:
        return address in self._addresses

    def __len__(self) -> int:
        return len(self._addresses)

    def __iter__(self) -> Iterator[str]:
        return iter(self._addresses)


class ReplaySet(Protocol):
    """Proof-of-work solutions already spent, until they expire."""

    evictions: int

    def spend(self, mac: bytes, expires: float, now: float) -> bool:
        """Record ``mac`` as spent until ``expires``; False if it was spent already."""

    def __len__(self) -> int: ...


class SpentTokens:
    """:class:`ReplaySet` in memory: at most ``capacity`` live entries; when full of live
    ones the oldest is forgotten (counted in ``evictions``), which reopens a replay of it
    for the rest of its life: size it above (verifications per second x token ttl)."""

    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.evictions = 0
        # MAC -> expiry. Insertion order is close to expiry order (one ttl for all), which
        # lets expired entries be purged from the front and the oldest go first when full.
        self._spent: OrderedDict[bytes, float] = OrderedDict()

    def spend(self, mac: bytes, expires: float, now: float) -> bool:
        spent = self._spent
        while spent:
            oldest, expiry = next(iter(spent.items()))
            if expiry > now:
                break
            del spent[oldest]
        if mac in spent:
            return False
        spent[mac] = expires
        while len(spent) > self.capacity:
            spent.popitem(last=False)
            self.evictions += 1
        return True

    def __len__(self) -> int:
        return len(self._spent)


class ShieldState(Protocol):
    """Where the shield keeps what it remembers; see the module docstring."""

    @property
    def secret(self) -> bytes:
        """The deployment's HMAC key: the same for every worker, so that a challenge one
        issued another accepts."""

    @property
    def known(self) -> KnownAddresses: ...

    @property
    def replay(self) -> ReplaySet: ...

    def limiter(self, name: str, rate: Rate) -> Limiter:
        """The buckets called ``name`` (one name, one set of keys, across workers)."""

    def bans(self, name: str, *, strikes: int, window: float, duration: float,
             mirror: Mirror | None = None,
             may_mirror: Callable[[str], bool] | None = None) -> Bans:
        """The ban list called ``name``; ``mirror`` copies this worker's bans to its kernel."""

    def budget(self, name: str, make: Callable[[], AdaptiveBudget]) -> AdaptiveBudget:
        """The adaptive budget called ``name`` (made by ``make`` the first time): the codes
        it grants count on every worker."""

    async def start(self) -> None:
        """Before the first check: connect, load, begin spreading changes."""

    async def stop(self) -> None:
        """After the last: spread what is left, disconnect."""


class MemoryShieldState:
    """:class:`ShieldState` in this process's memory (a restart forgets all but the secret,
    which the server keeps in its data directory, and known addresses, which it reloads
    from the sessions table)."""

    def __init__(self, secret: bytes | None = None, *, clock: Clock = time.monotonic,
                 max_known: int = 1_000_000, replay_capacity: int = 200_000) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.clock = clock
        self._known = KnownAddresses(max_known)
        self._replay = SpentTokens(replay_capacity)
        self._limiters: dict[str, KeyedLimiter] = {}
        self._bans: dict[str, BanList] = {}
        self._budget_by_name: dict[str, AdaptiveBudget] = {}

    @property
    def secret(self) -> bytes:
        return self._secret

    @property
    def known(self) -> KnownAddresses:
        return self._known

    @property
    def replay(self) -> SpentTokens:
        return self._replay

    # One name, one object: shields built on one state share it, as workers share a
    # shared state. A name asked for again with other parameters is a wiring mistake.
    def limiter(self, name: str, rate: Rate) -> KeyedLimiter:
        limiter = self._limiters.get(name)
        if limiter is None:
            limiter = self._limiters[name] = KeyedLimiter(rate, clock=self.clock)
        elif limiter.rate != rate:
            raise ValueError(f"limiter {name!r} exists with rate {limiter.rate}, not {rate}")
        return limiter

    def bans(self, name: str, *, strikes: int, window: float, duration: float,
             mirror: Mirror | None = None,
             may_mirror: Callable[[str], bool] | None = None) -> BanList:
        bans = self._bans.get(name)
        if bans is None:
            bans = self._bans[name] = BanList(strikes=strikes, window=window,
                                              duration=duration, clock=self.clock,
                                              mirror=mirror, may_mirror=may_mirror)
        elif (bans.strikes, bans.window, bans.duration) != (strikes, window, duration):
            raise ValueError(f"ban list {name!r} exists with other parameters")
        return bans

    def budget(self, name: str, make: Callable[[], AdaptiveBudget]) -> AdaptiveBudget:
        budget = self._budget_by_name.get(name)
        if budget is None:
            budget = self._budget_by_name[name] = make()
        return budget

    async def start(self) -> None:
        return None  # nothing to load: memory starts empty

    async def stop(self) -> None:
        return None  # nothing to spread
