"""Bans: addresses and prefixes that keep tripping limits are refused for a while.

Every time a limit trips for an address (a rate limit, a bad proof-of-work, a refused
connection) the server calls :meth:`BanList.strike`. An address with ``strikes`` strikes
within ``window`` seconds (or the ``needed`` the caller passes: penalties.py asks more of an
address that logged-in sessions share) is banned for ``duration``; once ``prefix_threshold``
addresses of one /24 or /64 are banned at the same time, the whole prefix is banned too,
because an attacker who owns a prefix can rotate through its addresses faster than we ban
them.

Memory is bounded: at most ``max_entries`` addresses are tracked for strikes (least recently
struck forgotten first; a forgotten address simply starts again from zero) and at most
``max_entries`` bans are held (the one closest to expiry goes first). Strikes are counted
with a sliding-window counter (two fixed windows, the previous one weighted by how much of
it still overlaps the sliding window) instead of a timestamp per strike: three numbers per
address instead of ``strikes`` floats, exact for a burst inside one window and within one
window's weighting otherwise, which is plenty for deciding a ban.

The list can be mirrored into an nftables set (:class:`~pigeon.shield.nft.NftMirror`, also
importable from here), so the kernel drops a banned peer's packets before they cost a
syscall here. The mirror is an accelerator, not the authority: ``banned()`` answers from
this list whether or not ``nft`` worked.
"""

from __future__ import annotations

import asyncio
import builtins
import heapq
import ipaddress
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pigeon.protocol.errors import RateLimited

from .admission import prefix_of
from .nft import NftMirror

__all__ = ["Ban", "BanList", "Mirror", "NftMirror"]

log = logging.getLogger("pigeon.shield.bans")

Clock = Callable[[], float]

MAX_PENDING_MIRROR = 1000  # mirror calls in flight; beyond this a ban is not mirrored
MAX_REASONS = 64  # distinct strike reasons counted in stats(); the rest count as "other"


_GROUPING = {(4, 24), (6, 64)}


def _shape(prefix: str) -> tuple[int, int]:
    network = ipaddress.ip_network(prefix, strict=False)
    return network.version, network.prefixlen


class Mirror(Protocol):
    async def add(self, target: str, seconds: float) -> bool: ...

    async def remove(self, target: str) -> bool: ...


@dataclass(frozen=True)
class Ban:
    """One ban as :meth:`BanList.list` reports it."""

    target: str  # an address, or a prefix such as "203.0.113.0/24"
    prefix: bool
    seconds_left: float
    reason: str


class _Strikes:
    __slots__ = ("current", "previous", "window")

    def __init__(self, window: int) -> None:
        self.window = window  # index of the fixed window ``current`` counts
        self.previous = 0
        self.current = 0

    def add(self, now: float, length: float) -> float:
        """Count one strike at ``now``; return the estimated strikes in the last ``length``."""
        index = math.floor(now / length)
        if index != self.window:
            self.previous = self.current if index == self.window + 1 else 0
            self.current = 0
            self.window = index
        self.current += 1
        overlap = 1.0 - (now - index * length) / length
        return self.previous * overlap + self.current


@dataclass(eq=False)
class _Entry:
    target: str
    until: float
    reason: str
    prefix: bool


class BanList:
    #: see :class:`~.state.Bans`: only a shared state's ban lists call it
    on_remote_ban: Callable[[str, float], None] | None = None
    """Strikes in, bans out; see the module docstring."""

    def __init__(
        self,
        strikes: int = 20,
        window: float = 60.0,
        duration: float = 600.0,
        prefix_threshold: int = 8,
        max_entries: int = 100_000,
        clock: Clock = time.monotonic,
        mirror: Mirror | None = None,
        may_mirror: Callable[[str], bool] | None = None,
    ) -> None:
        if strikes < 1 or window <= 0 or duration <= 0 or prefix_threshold < 1:
            raise ValueError("strikes, window, duration and prefix_threshold must be positive")
        self.strikes = strikes
        self.window = window
        self.duration = duration
        self.prefix_threshold = prefix_threshold
        self.max_entries = max_entries
        self.clock = clock
        self.mirror = mirror
        # Which automatic bans go to the kernel: the shield keeps addresses that logged-in
        # sessions use in process only, so their devices can still reach the token-only
        # door (guard.py). Manual bans always go.
        self.may_mirror = may_mirror
        self._strikes: OrderedDict[str, _Strikes] = OrderedDict()
        self._bans: dict[str, _Entry] = {}
        self._expiry: list[tuple[float, int, _Entry]] = []  # heap; stale items skipped
        self._sequence = 0
        self._banned_in_prefix: Counter[str] = Counter()  # live address bans per prefix
        # (IP version, length) -> live prefix bans of that shape, so that banned() knows
        # which networks besides the address's own /24 or /64 to look it up in.
        self._prefix_lengths: Counter[tuple[int, int]] = Counter()
        self._struck: Counter[str] = Counter()
        self._totals = {"bans": 0, "prefix_bans": 0, "evicted": 0, "mirror_skipped": 0}
        self._tasks: set[asyncio.Task[bool]] = set()

    # -- recording -------------------------------------------------------------------------
    def strike(self, address: str, reason: str = "limit", needed: float | None = None) -> float:
        """Record one limit trip; returns the seconds the address is now banned (0 if not).

        ``needed``: the strikes within the window that ban this address, if not ``strikes``
        (the shield asks for more from an address that many logged-in sessions share)."""
        now = self.clock()
        self._purge(now)
        key = reason if reason in self._struck or len(self._struck) < MAX_REASONS else "other"
        self._struck[key] += 1
        left = self._left(address, now)
        if left > 0:
            return left  # already refused at the door; nothing more to learn
        record = self._strikes.get(address)
        if record is None:
            record = self._strikes[address] = _Strikes(math.floor(now / self.window))
            if len(self._strikes) > self.max_entries:
                self._strikes.popitem(last=False)
        else:
            self._strikes.move_to_end(address)
        if record.add(now, self.window) < (self.strikes if needed is None else needed):
            return 0.0
        del self._strikes[address]
        self._ban(address, self.duration, reason, now, is_prefix=False, automatic=True)
        prefix = prefix_of(address)
        if (
            prefix != address
            and self._banned_in_prefix[prefix] >= self.prefix_threshold
            and prefix not in self._bans
        ):
            self._ban(prefix, self.duration, reason, now, is_prefix=True, automatic=True)
        return self.duration

    def ban(self, target: str, seconds: float | None = None, reason: str = "manual") -> str:
        """Ban an address or a prefix of any length (``"198.51.100.0/22"``) by hand, e.g. from
        the CLI; returns the target as stored (a prefix is normalised to its network)."""
        now = self.clock()
        self._purge(now)
        is_prefix = "/" in target
        if is_prefix:
            target = str(ipaddress.ip_network(target, strict=False))  # ValueError if not one
        self._ban(target, self.duration if seconds is None else seconds, reason, now, is_prefix)
        return target

    def unban(self, target: str) -> bool:
        """Lift a ban (address or prefix); True if there was one."""
        entry = self._bans.get(target)
        if entry is None:
            return False
        self._drop(entry)
        self._strikes.pop(target, None)
        if self.mirror is not None:
            self._schedule(self.mirror.remove(target))
        return True

    # -- reading ---------------------------------------------------------------------------
    def banned(self, address: str) -> float:
        """Seconds left on the ban covering this address (its own or its prefix's), or 0."""
        now = self.clock()
        self._purge(now)
        return self._left(address, now)

    def check(self, address: str) -> None:
        """Raise RateLimited(code="BANNED") if the address is banned."""
        left = self.banned(address)
        if left > 0:
            raise RateLimited(
                f"this address is banned for {math.ceil(left)} s after repeated abuse",
                code="BANNED",
                retry_after=round(left, 3),
            )

    def list(self) -> builtins.list[Ban]:
        now = self.clock()
        self._purge(now)
        return sorted(
            (Ban(e.target, e.prefix, e.until - now, e.reason) for e in self._bans.values()),
            key=lambda ban: -ban.seconds_left,
        )

    def stats(self) -> dict[str, object]:
        self._purge(self.clock())
        prefixes = sum(1 for e in self._bans.values() if e.prefix)
        return {
            "banned_addresses": len(self._bans) - prefixes,
            "banned_prefixes": prefixes,
            "tracked": len(self._strikes),
            "strikes": dict(self._struck),
            **self._totals,
            "mirror_pending": len(self._tasks),
        }

    async def flush(self) -> None:
        """Wait for the mirror calls in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------
    def _left(self, address: str, now: float) -> float:
        keys = [address, prefix_of(address)]
        # Only manual bans of other prefix lengths need the address parsed: automatic prefix
        # bans are /24 or /64, which prefix_of (cached) already covers. This runs per accept.
        if any(n > 0 and shape not in _GROUPING for shape, n in self._prefix_lengths.items()):
            keys.extend(self._networks_of(address))
        left = 0.0
        for key in keys:
            entry = self._bans.get(key)
            if entry is not None:
                left = max(left, entry.until - now)
        return max(0.0, left)

    def _networks_of(self, address: str) -> builtins.list[str]:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return []
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return [
            str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
            for version, length in self._prefix_lengths
            if version == ip.version and (version, length) not in _GROUPING  # prefix_of's
        ]

    def _ban(self, target: str, seconds: float, reason: str, now: float, is_prefix: bool,
             automatic: bool = False) -> None:
        old = self._bans.get(target)
        if old is not None:
            self._drop(old)
        entry = _Entry(target, now + seconds, reason, is_prefix)
        self._bans[target] = entry
        self._sequence += 1
        heapq.heappush(self._expiry, (entry.until, self._sequence, entry))
        if is_prefix:
            self._prefix_lengths[_shape(target)] += 1
        else:
            self._banned_in_prefix[prefix_of(target)] += 1
        self._totals["prefix_bans" if is_prefix else "bans"] += 1
        log.info("banned %s for %.0f s (%s)", target, seconds, reason)
        while len(self._bans) > self.max_entries:
            # Full: the ban closest to its end goes first, the least lost by forgetting it.
            self._drop(self._pop_soonest())
            self._totals["evicted"] += 1
        if len(self._expiry) > 2 * self.max_entries + 16:
            self._expiry = [(e.until, n, e) for _, n, e in self._expiry if self._live(e)]
            heapq.heapify(self._expiry)
        if self.mirror is not None and not (
                automatic and self.may_mirror is not None and not self.may_mirror(target)):
            self._schedule(self.mirror.add(target, seconds))

    def _live(self, entry: _Entry) -> bool:
        return self._bans.get(entry.target) is entry

    def _pop_soonest(self) -> _Entry:
        while True:
            entry = heapq.heappop(self._expiry)[2]
            if self._live(entry):
                return entry

    def _drop(self, entry: _Entry) -> None:
        del self._bans[entry.target]
        if entry.prefix:
            shape = _shape(entry.target)
            self._prefix_lengths[shape] -= 1
            if self._prefix_lengths[shape] <= 0:
                del self._prefix_lengths[shape]
        else:
            prefix = prefix_of(entry.target)
            self._banned_in_prefix[prefix] -= 1
            if self._banned_in_prefix[prefix] <= 0:
                del self._banned_in_prefix[prefix]

    def _purge(self, now: float) -> None:
        heap = self._expiry
        while heap and (heap[0][0] <= now or not self._live(heap[0][2])):
            entry = heapq.heappop(heap)[2]
            if self._live(entry):
                self._drop(entry)

    def _schedule(self, coroutine: Coroutine[Any, Any, bool]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(self._tasks) >= MAX_PENDING_MIRROR:
            # No loop (a synchronous caller) or nft is not keeping up: the ban still holds
            # here, only the kernel does not learn of it.
            self._totals["mirror_skipped"] += 1
            coroutine.close()
            return
        task = loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
