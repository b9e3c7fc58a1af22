"""The bus over NATS: an update written in one process reaches devices connected to any
other process, worker or node of the deployment.

Each process keeps a :class:`~.local.LocalBus` of its own connections and delivers to them
at once (the local fast path: a device connected where the write happened never waits for
the network). Everything is also published on NATS, where each process has subscribed, on
behalf of its own connections, to exactly the subjects they need:

* ``<prefix>.u.<user id>``: a user's updates, ephemeral updates, pushes to one session,
  revocations and "follow this stream" orders; subscribed while one of the user's devices is
  connected here.
* ``<prefix>.s.<stream>``: items of a stream (a large chat, a device inbox); subscribed while
  a device here follows it.
* ``<prefix>.fan``: a write with many recipients (a group message) goes out once here, not
  once per member, and every process picks its own users out of it.
* ``<prefix>.revoke``: ended sessions, to every process: each keeps a map of live sessions to
  check resumption tickets by (shield/resumption.py), whether or not the user has a device
  there.

Revocations must not be missed, or a terminated session's ticket would still resume it in a
process that did not hear. So a process that loses its NATS connection may have missed some:
it tells its server (``unsure``), which forgets its live sessions (every hello takes the long
way, the token checked in the store, until sessions are checked again), and ``revocations_current``
is false until it is back. A process that could not get a revocation of its own out (the
publish or the flush that confirms it failed) tells every other to forget, once it is back.

Order: the bus's methods are synchronous and called in commit order (see :mod:`.base`);
operations are queued in that order and one task sends them, so a process publishes each
user's updates in ``pts`` order. Updates of one user written by two processes may arrive
interleaved: the device sees a gap, asks for the difference, and skips what it already has,
as after any lost push.

Faults: the NATS client reconnects by itself and re-subscribes; while NATS is away this
process keeps serving its own devices (degraded: others see this process's writes when they
next ask for the difference). A frame on a subject that this code cannot read is logged,
counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from pigeon.protocol.updates import body_decoder
from pigeon.store.base import Push

from .base import Sink
from .local import LocalBus

log = logging.getLogger("pigeon.bus.nats")

#: a delivery to more users than this goes out once on the fan-out subject
FAN_OUT_AT = 16
#: seconds a revocation's publish may take to be confirmed by the NATS server (a flush)
CONFIRM_TIMEOUT = 5.0
#: operations waiting for NATS, at most; past it publishes are dropped (and counted), while
#: subscriptions are still kept, so a process cut off for long does not grow without bound
MAX_QUEUED = 100_000


class Frame(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """What travels on a subject. ``op`` says what to do with it; a frame of an ``op`` this
    code does not know (a newer process) is dropped."""

    origin: str
    op: str
    update: bytes = b""  # the update, msgpack-encoded as the protocol writes it
    targets: list[tuple[int, int]] = []
    stream: str = ""
    exclude_session: int | None = None
    session_id: int | None = None
    session_ids: list[int] = []
    reason: str = ""
    user_id: int = 0  # a revocation's user (0: the user of the subject, as older processes sent)


_encode = msgspec.msgpack.Encoder().encode
_decode_frame = msgspec.msgpack.Decoder(Frame).decode


class NatsBus:
    """:class:`~.base.Bus` across processes. :meth:`start` connects (retrying in the
    background while NATS is unreachable) and :meth:`close` drains."""

    def __init__(self, url: str, prefix: str = "pigeon") -> None:
        self.url = url
        self.prefix = prefix
        self.origin = secrets.token_hex(8)  # this process, so that it ignores its own frames
        self._local = LocalBus()
        self._ops: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self._subs: dict[str, Subscription] = {}
        self._wanted: dict[str, int] = {}  # subject -> local sinks that need it
        self._nc: NatsClient | None = None
        self._sender: asyncio.Task[None] | None = None
        self.stats = {"published": 0, "received": 0, "dropped": 0, "malformed": 0, "own": 0}
        self._revoked: Callable[[list[int]], None] = lambda session_ids: None
        self._unsure: Callable[[], None] = lambda: None
        # A revocation of ours may not have reached the others: tell them to forget, once back.
        self._must_forget = False
        # Our subscription to revocations is in force at the NATS server (subscribed, then a
        # flush answered): false from a disconnect until the same holds again.
        self._revocations_heard = False

    # -- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._sender = asyncio.create_task(self._run(), name="nats-bus")
        self._want(f"{self.prefix}.fan")
        self._want(self._revoke_subject)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def _revoke_subject(self) -> str:
        return f"{self.prefix}.revoke"

    def on_revocations(self, revoked: Callable[[list[int]], None],
                       unsure: Callable[[], None]) -> None:
        self._revoked, self._unsure = revoked, unsure

    @property
    def revocations_current(self) -> bool:
        return self._revocations_heard and self.connected

    def health(self) -> dict[str, Any]:
        return {"kind": "nats", "connected": self.connected, "queued": self._ops.qsize(),
                "subjects": len(self._wanted), **self.stats}

    async def _connect(self) -> NatsClient:
        delay = 0.1
        while True:
            try:
                return await nats.connect(
                    servers=[self.url], name=f"pigeon-{self.origin}", connect_timeout=2,
                    # Our own frames back would be decoded only to be dropped: with 2
                    # workers, 3 of every 4 frames a worker received were its own.
                    no_echo=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect)
            except Exception as exc:  # NATS away at start: serve locally, retry
                log.warning("NATS at %s unreachable (%s); serving this process's devices "
                            "only, retrying in %.1f s", self.url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    async def _on_disconnect(self) -> None:
        log.warning("NATS connection lost; reconnecting (this process keeps serving its own)")
        self._revocations_heard = False
        self._unsure()  # revocations made elsewhere meanwhile will not reach us

    async def _on_reconnect(self) -> None:
        # The client subscribed again before this; the flush's answer says the server has it.
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=CONFIRM_TIMEOUT)
                self._revocations_heard = True
        if self._must_forget:
            self._ops.put_nowait(("forget", self._revoke_subject, b""))

    async def _run(self) -> None:
        self._nc = nc = await self._connect()
        for subject in list(self._wanted):
            self._subs[subject] = await nc.subscribe(subject, cb=self._receive)
        with contextlib.suppress(Exception):
            await nc.flush(timeout=CONFIRM_TIMEOUT)
            self._revocations_heard = True  # else: at the next reconnect
        if self._must_forget:  # revocations dropped before we ever connected
            self._ops.put_nowait(("forget", self._revoke_subject, b""))
        while True:
            op, subject, payload = await self._ops.get()
            try:
                if op == "pub":
                    await nc.publish(subject, payload)
                    self.stats["published"] += 1
                elif op in ("revoke", "forget"):
                    if op == "forget":
                        payload = _encode(self._frame("forget"))
                    await nc.publish(subject, payload)
                    await nc.flush(timeout=CONFIRM_TIMEOUT)  # the server has it
                    self.stats["published"] += 1
                    if op == "forget":
                        self._must_forget = False
                elif op == "sub" and subject in self._wanted and subject not in self._subs:
                    self._subs[subject] = await nc.subscribe(subject, cb=self._receive)
                elif op == "unsub" and subject not in self._wanted and subject in self._subs:
                    await self._subs.pop(subject).unsubscribe()
            except Exception as exc:  # a full buffer while reconnecting
                self.stats["dropped"] += 1
                if op in ("revoke", "forget"):
                    self._must_forget = True
                log.debug("NATS %s %s failed: %s", op, subject, exc)

    # -- interest ------------------------------------------------------------------------------
    def _want(self, subject: str) -> None:
        count = self._wanted.get(subject, 0)
        self._wanted[subject] = count + 1
        if not count:
            self._ops.put_nowait(("sub", subject, b""))

    def _unwant(self, subject: str) -> None:
        count = self._wanted.get(subject, 0) - 1
        if count > 0:
            self._wanted[subject] = count
            return
        self._wanted.pop(subject, None)
        self._ops.put_nowait(("unsub", subject, b""))

    def _user(self, user_id: int) -> str:
        return f"{self.prefix}.u.{user_id}"

    def _stream(self, stream: str) -> str:
        return f"{self.prefix}.s.{stream}"

    def _send(self, subject: str, frame: Frame, op: str = "pub") -> None:
        if self._ops.qsize() >= MAX_QUEUED:
            self.stats["dropped"] += 1
            self._must_forget = self._must_forget or op == "revoke"
            return
        self._ops.put_nowait((op, subject, _encode(frame)))

    def _frame(self, op: str, **fields: Any) -> Frame:
        return Frame(origin=self.origin, op=op, **fields)

    # -- Bus: who is here ------------------------------------------------------------------
    def attach(self, sink: Sink) -> None:
        self._local.attach(sink)
        assert sink.user_id is not None
        self._want(self._user(sink.user_id))

    def detach(self, sink: Sink) -> None:
        streams = self._local.streams_of(sink)
        user_id = sink.user_id
        attached = self._local.is_attached(sink)
        self._local.detach(sink)
        for stream in streams:
            self._unwant(self._stream(stream))
        if attached and user_id is not None:
            self._unwant(self._user(user_id))

    def subscribe(self, sink: Sink, stream: str) -> None:
        if stream not in self._local.streams_of(sink):
            self._want(self._stream(stream))
        self._local.subscribe(sink, stream)

    def unsubscribe(self, sink: Sink, stream: str) -> None:
        if stream in self._local.streams_of(sink):
            self._unwant(self._stream(stream))
        self._local.unsubscribe(sink, stream)

    def _follow_here(self, user_id: int, stream: str, follow: bool) -> None:
        for sink in self._local.sinks_of(user_id):
            if follow and sink.reads_streams:
                self.subscribe(sink, stream)
            elif not follow:
                self.unsubscribe(sink, stream)

    def subscribe_user(self, user_id: int, stream: str) -> None:
        self._follow_here(user_id, stream, True)
        self._send(self._user(user_id), self._frame("follow", stream=stream))

    def unsubscribe_user(self, user_id: int, stream: str) -> None:
        self._follow_here(user_id, stream, False)
        self._send(self._user(user_id), self._frame("unfollow", stream=stream))

    # -- Bus: delivery ---------------------------------------------------------------------
    def publish(self, stream: str, item: Any, exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        reached = self._local.publish(stream, item, exclude_session, exclude_sink=exclude_sink)
        self._send(self._stream(stream), self._frame(
            "item", stream=stream, update=_encode(item),
            exclude_session=exclude_session))
        return reached

    def deliver(self, pushes: Iterable[Push], exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        pushes = list(pushes)
        reached = self._local.deliver(pushes, exclude_session, exclude_sink=exclude_sink)
        for update, targets in pushes:
            raw = _encode(update)
            if len(targets) > FAN_OUT_AT:
                self._send(f"{self.prefix}.fan", self._frame(
                    "push", update=raw, targets=targets, exclude_session=exclude_session))
                continue
            for user_id, pts in targets:
                self._send(self._user(user_id), self._frame(
                    "push", update=raw, targets=[(user_id, pts)],
                    exclude_session=exclude_session))
        return reached

    def deliver_ephemeral(self, user_ids: Iterable[int], update: Any) -> None:
        user_ids = list(user_ids)
        self._local.deliver_ephemeral(user_ids, update)
        raw = _encode(update)
        for user_id in user_ids:
            self._send(self._user(user_id), self._frame("ephemeral", update=raw))

    def push_to_session(self, user_id: int, session_id: int, update: Any) -> int:
        reached = self._local.push_to_session(user_id, session_id, update)
        self._send(self._user(user_id), self._frame(
            "session", update=_encode(update), session_id=session_id))
        return reached

    def revoke_sessions(self, user_id: int, session_ids: Iterable[int], reason: str) -> None:
        session_ids = list(session_ids)
        self._local.revoke_sessions(user_id, session_ids, reason)
        self._send(self._revoke_subject, self._frame(
            "revoke", user_id=user_id, session_ids=session_ids, reason=reason[:200]),
            op="revoke")

    def online_devices(self, user_id: int) -> int:
        return self._local.online_devices(user_id)

    def connection_count(self) -> int:
        return self._local.connection_count()

    # -- frames from other processes ----------------------------------------------------------
    async def _receive(self, msg: Msg) -> None:
        try:
            frame = _decode_frame(msg.data)
            if frame.origin == self.origin:  # NATS is asked not to echo (no_echo)
                self.stats["own"] += 1
                return
            self.stats["received"] += 1
            self._apply(msg.subject, frame)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError,
                TypeError) as exc:
            self.stats["malformed"] += 1
            log.warning("dropped a frame on %s that this process cannot read: %s",
                        msg.subject, exc)

    def _apply(self, subject: str, frame: Frame) -> None:
        update = body_decoder.decode(frame.update) if frame.update else None
        local = self._local
        if frame.op == "push" and update is not None:
            # the calling connection lives in the origin process: only sessions are excluded
            local.deliver([Push(update, frame.targets)], frame.exclude_session)
        elif frame.op == "item" and update is not None:
            local.publish(frame.stream, update, frame.exclude_session)
        elif frame.op == "ephemeral" and update is not None:
            local.deliver_ephemeral([_user_of(subject)], update)
        elif frame.op == "session" and update is not None and frame.session_id is not None:
            local.push_to_session(_user_of(subject), frame.session_id, update)
        elif frame.op == "revoke":
            user_id = frame.user_id or _user_of(subject)
            self._revoked(list(frame.session_ids))  # tickets first: revocation wins
            local.revoke_sessions(user_id, frame.session_ids, frame.reason)
        elif frame.op == "forget":
            self._unsure()
        elif frame.op in ("follow", "unfollow") and frame.stream:
            self._follow_here(_user_of(subject), frame.stream, frame.op == "follow")
        else:
            raise ValueError(f"unknown or incomplete op {frame.op!r}")


def _user_of(subject: str) -> int:
    return int(subject.rsplit(".", 1)[1])
