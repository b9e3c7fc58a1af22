"""The shield's state shared by every worker and node, over NATS (issue 12, deliverable 4).

An attacker must gain nothing by spreading over N processes: the tokens one worker's buckets
hand out, the strikes and bans it records, the addresses its users log in from, the
proof-of-work solutions it sees spent and the login codes its budgets grant all count on
every other worker too. :class:`NatsShieldState` keeps the local fast path of
:class:`~.state.MemoryShieldState` (every check answered from this process's memory) and
spreads what changed: each worker gathers its changes and publishes them every
``FLUSH_EVERY`` seconds, in one frame on ``<prefix>.shield``; each applies the others' to its
own copies. A worker's buckets are charged what others spent, strikes are counted
everywhere (so the ban comes at the same total, whichever workers saw them), a ban learnt
from another worker closes what it shuts out here as a local one would (the Penalties
callbacks), and a manual ban or unban reaches every worker.

What slips through is bounded: between two flushes each worker may hand out up to its own
burst; after that the deployment behaves as one bucket. Without NATS (at start or later)
every worker keeps its own limits: degraded to per-process limits, never to none. The
deployment's secret is not spread here: every node reads the same ``secret.key`` (copied to
each, as any cluster key; docs/operations.md); frames carry a fingerprint of it, and a
worker that sees another fingerprint says so loudly.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from .bans import BanList, Mirror
from .codebudget import AdaptiveBudget
from .ratelimit import KeyedLimiter, Rate
from .state import KnownAddresses, MemoryShieldState, SpentTokens

log = logging.getLogger("pigeon.shield.shared")

#: seconds between two publications of a worker's changes
FLUSH_EVERY = 0.05
#: entries of one kind in one frame, at most (a frame stays far below NATS' 1 MB)
MAX_ENTRIES = 2_000


class ShieldFrame(msgspec.Struct, kw_only=True, omit_defaults=True):
    origin: str
    secret_id: str
    spent: list[tuple[str, str, float]] = []          # limiter, key, tokens
    strikes: list[tuple[str, str, str, float | None]] = []  # ban list, address, reason, needed
    bans: list[tuple[str, str, float | None, str]] = []     # ban list, target, seconds, reason
    unbans: list[tuple[str, str]] = []
    known: list[str] = []
    replayed: list[tuple[bytes, float]] = []          # proof-of-work MAC, expiry (wall clock)
    codes: list[tuple[str, str, bool]] = []           # budget, key, proven


_decode = msgspec.msgpack.Decoder(ShieldFrame).decode
_encode = msgspec.msgpack.Encoder().encode


class _Changes:
    """What this worker changed since its last flush."""

    def __init__(self) -> None:
        self.spent: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.strikes: list[tuple[str, str, str, float | None]] = []
        self.bans: list[tuple[str, str, float | None, str]] = []
        self.unbans: list[tuple[str, str]] = []
        self.known: dict[str, None] = {}
        self.replayed: list[tuple[bytes, float]] = []
        self.codes: list[tuple[str, str, bool]] = []

    def __bool__(self) -> bool:
        return bool(self.spent or self.strikes or self.bans or self.unbans or self.known
                    or self.replayed or self.codes)

    def frames(self, origin: str, secret_id: str) -> list[ShieldFrame]:
        kinds = {"spent": [(n, k, c) for (n, k), c in self.spent.items()],
                 "strikes": self.strikes, "bans": self.bans, "unbans": self.unbans,
                 "known": list(self.known), "replayed": self.replayed, "codes": self.codes}
        out = []
        longest = max(len(v) for v in kinds.values())
        for start in range(0, longest, MAX_ENTRIES):
            part = {name: v[start:start + MAX_ENTRIES] for name, v in kinds.items()}
            out.append(ShieldFrame(origin=origin, secret_id=secret_id, **part))
        return out


class _SharedLimiter:
    def __init__(self, local: KeyedLimiter, name: str, changes: Callable[[], _Changes]) -> None:
        self.local, self.name, self._changes = local, name, changes

    @property
    def rate(self) -> Rate:
        return self.local.rate

    def take(self, key: str, cost: float = 1.0) -> float:
        wait = self.local.take(key, cost)
        if not wait:
            self._changes().spent[(self.name, key)] += cost
        return wait

    def charge(self, key: str, cost: float) -> None:
        self.local.charge(key, cost)
        self._changes().spent[(self.name, key)] += cost

    def __len__(self) -> int:
        return len(self.local)


class _SharedBans:
    """A ban list whose strikes, bans and unbans reach every worker; the rest is local."""

    def __init__(self, local: BanList, name: str, changes: Callable[[], _Changes]) -> None:
        self.local, self.name, self._changes = local, name, changes
        self.on_remote_ban: Callable[[str, float], None] | None = None

    @property
    def strikes(self) -> int:
        return self.local.strikes

    def strike(self, address: str, reason: str = "limit", needed: float | None = None) -> float:
        self._changes().strikes.append((self.name, address, reason[:32], needed))
        return self.local.strike(address, reason, needed)

    def ban(self, target: str, seconds: float | None = None, reason: str = "manual") -> str:
        stored = self.local.ban(target, seconds, reason)
        self._changes().bans.append((self.name, stored, seconds, reason[:64]))
        return stored

    def unban(self, target: str) -> bool:
        self._changes().unbans.append((self.name, target))
        return self.local.unban(target)

    def banned(self, address: str) -> float:
        return self.local.banned(address)

    def check(self, address: str) -> None:
        self.local.check(address)

    def stats(self) -> dict[str, object]:
        return self.local.stats()

    def __getattr__(self, name: str) -> Any:  # list(), flush(), clock...: this worker's
        return getattr(self.local, name)

    def apply_strike(self, address: str, reason: str, needed: float | None) -> None:
        was = self.local.banned(address)
        seconds = self.local.strike(address, reason, needed)
        if seconds and not was and self.on_remote_ban is not None:
            self.on_remote_ban(address, seconds)

    def apply_ban(self, target: str, seconds: float | None, reason: str) -> None:
        self.local.ban(target, seconds, reason)
        if self.on_remote_ban is not None:
            self.on_remote_ban(target, self.local.banned(target) or (seconds or 0.0))


class _SharedKnown(KnownAddresses):
    def __init__(self, max_addresses: int, changes: Callable[[], _Changes]) -> None:
        super().__init__(max_addresses)
        self._changes = changes

    def remember(self, address: str) -> None:
        if address not in self:
            self._changes().known[address] = None
        super().remember(address)

    def apply(self, address: str) -> None:
        super().remember(address)


class _SharedReplay(SpentTokens):
    def __init__(self, capacity: int, changes: Callable[[], _Changes]) -> None:
        super().__init__(capacity)
        self._changes = changes

    def spend(self, mac: bytes, expires: float, now: float) -> bool:
        fresh = super().spend(mac, expires, now)
        if fresh:
            self._changes().replayed.append((mac, expires))
        return fresh

    def apply(self, mac: bytes, expires: float) -> None:
        super().spend(mac, expires, time.time())


class NatsShieldState(MemoryShieldState):
    """:class:`~.state.ShieldState` shared over NATS; see the module docstring."""

    def __init__(self, url: str, prefix: str, secret: bytes, *, max_known: int = 1_000_000,
                 replay_capacity: int = 200_000, flush_every: float = FLUSH_EVERY) -> None:
        super().__init__(secret, max_known=max_known, replay_capacity=replay_capacity)
        self.url, self.subject, self.flush_every = url, f"{prefix}.shield", flush_every
        self.origin = secrets.token_hex(8)
        self.secret_id = hashlib.sha256(b"pigeon-shield-id:" + secret).hexdigest()[:16]
        self._pending = _Changes()
        self._known = _SharedKnown(max_known, self._now)
        self._replay = _SharedReplay(replay_capacity, self._now)
        self._shared_limiters: dict[str, _SharedLimiter] = {}
        self._shared_bans: dict[str, _SharedBans] = {}
        self._budgets: dict[str, AdaptiveBudget] = {}
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_secret = False
        self.stats = {"frames_out": 0, "frames_in": 0, "dropped": 0, "malformed": 0}

    def _now(self) -> _Changes:
        return self._pending

    # -- what the shield asks for -------------------------------------------------------------
    def limiter(self, name: str, rate: Rate) -> _SharedLimiter:  # type: ignore[override]
        local = super().limiter(name, rate)
        shared = self._shared_limiters.get(name)
        if shared is None:
            shared = self._shared_limiters[name] = _SharedLimiter(local, name, self._now)
        return shared

    def bans(self, name: str, *, strikes: int, window: float, duration: float,  # type: ignore[override]
             mirror: Mirror | None = None,
             may_mirror: Callable[[str], bool] | None = None) -> _SharedBans:
        local = super().bans(name, strikes=strikes, window=window, duration=duration,
                             mirror=mirror, may_mirror=may_mirror)
        shared = self._shared_bans.get(name)
        if shared is None:
            shared = self._shared_bans[name] = _SharedBans(local, name, self._now)
        return shared

    def budget(self, name: str, make: Callable[[], AdaptiveBudget]) -> AdaptiveBudget:
        budget = self._budgets.get(name)
        if budget is None:
            budget = self._budgets[name] = make()
            budget.on_spend = lambda key, proven: self._pending.codes.append(
                (name, key, proven))
        return budget

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # -- spreading ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="shield-share")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._nc is not None and not self._nc.is_closed:
            await self.flush()
            await self._nc.close()

    async def _run(self) -> None:
        connecting = asyncio.create_task(self._connect())
        try:
            while True:
                await asyncio.sleep(self.flush_every)
                await self.flush()
        finally:
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)

    async def _connect(self) -> None:
        # nats-py keeps trying by itself (max_reconnect_attempts=-1), at start too.
        nc = await nats.connect(servers=[self.url], connect_timeout=2,
                                max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                error_cb=self._on_error)
        await nc.subscribe(self.subject, cb=self._receive)
        self._nc = nc

    async def _on_error(self, exc: Exception) -> None:
        log.warning("shield state: NATS: %s", exc)

    async def flush(self) -> None:
        """Publish what changed here since the last flush (tests call it to skip the wait)."""
        changes, self._pending = self._pending, _Changes()
        if not changes:
            return
        if not self.connected:
            # Nobody to tell: every worker limits on its own meanwhile; memory stays bounded.
            self.stats["dropped"] += 1
            return
        assert self._nc is not None
        for frame in changes.frames(self.origin, self.secret_id):
            try:
                await self._nc.publish(self.subject, _encode(frame))
                self.stats["frames_out"] += 1
            except Exception as exc:  # reconnecting, buffer full: per-process limits meanwhile
                self.stats["dropped"] += 1
                log.debug("shield state: a frame was not sent: %s", exc)

    async def _receive(self, msg: Msg) -> None:
        try:
            frame = _decode(msg.data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            self.stats["malformed"] += 1
            log.warning("shield state: dropped a frame this process cannot read: %s", exc)
            return
        if frame.origin == self.origin:
            return
        self.stats["frames_in"] += 1
        if frame.secret_id != self.secret_id and not self._warned_secret:
            self._warned_secret = True
            log.error("shield state: another node runs with a different secret.key: login "
                      "codes and challenges it issues fail here; copy one secret.key to all")
        self._apply(frame)

    def _apply(self, frame: ShieldFrame) -> None:
        for name, key, cost in frame.spent:
            limiter = self._shared_limiters.get(name)
            if limiter is not None:
                limiter.local.charge(key, cost)
        for name, address, reason, needed in frame.strikes:
            if (bans := self._shared_bans.get(name)) is not None:
                bans.apply_strike(address, reason, needed)
        for name, target, seconds, reason in frame.bans:
            if (bans := self._shared_bans.get(name)) is not None:
                bans.apply_ban(target, seconds, reason)
        for name, target in frame.unbans:
            if (bans := self._shared_bans.get(name)) is not None:
                bans.local.unban(target)
        for address in frame.known:
            self._known.apply(address)
        for mac, expires in frame.replayed:
            self._replay.apply(mac, expires)
        for name, key, proven in frame.codes:
            if (budget := self._budgets.get(name)) is not None:
                budget.record(key, proven)
