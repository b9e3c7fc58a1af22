"""One client connection, independent of the transport that carries its frames.

The transport adapter feeds whole frames to :meth:`Connection.receive`, waits on
:meth:`Connection.wait_writable` before reading the next one, and drains
:meth:`Connection.next_frame` to the socket. Between them: the sans-I/O protocol, the
dispatcher, and the bounds that keep one peer from holding unbounded memory:

* at most ``max_in_flight`` calls at once (the adapter stops reading while the window is full);
* frames waiting to be written: past ``outbox_bytes`` (or the account's
  ``outbox_bytes_account``, server/quota.py) the adapter stops reading and bulk calls wait,
  so a peer that does not read cannot make us compute more for it (issue 7, finding 2: one
  account took the server from 63 MiB to 2 GiB by pipelining get_difference and never
  reading);
* a device whose writes make no progress for ``slow_consumer_seconds`` with frames queued,
  or that has four times ``outbox_bytes`` (or ``outbox_frames`` frames) queued, is cut off
  (SLOW_CONSUMER) and what was queued for it is dropped; it resyncs with get_difference
  when it returns.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from pigeon.domain.streams import device_stream
from pigeon.protocol.closing import format_reason
from pigeon.protocol.errors import (
    HARMLESS_CODES, PigeonError, RateLimited, Unauthorized, Unavailable,
)
from pigeon.protocol.frames import (
    CallReceived, CallRejected, HelloReceived, ServerProtocol, Violation,
)
from pigeon.protocol.methods import METHODS
from pigeon.protocol.streams import user_stream
from pigeon.shield.guard import WorkClass

from .dispatch import HANDLERS
from .quota import RETRY_AFTER
from .services import Caller, Services
from .sessions import authenticate, hash_token

# When a device cut off for not reading may come back (it was told in the close frame only:
# its outbox, the error frame with it, was dropped).
SLOW_CONSUMER_RETRY = 5.0

log = logging.getLogger("pigeon.connection")

# Refusals that an honest client meets in normal use do not count towards closing its
# connection (the ``harmless`` fact of pigeon.protocol.errors.ERROR_CODES).
_HARMLESS = HARMLESS_CODES

# Connection ids on the bus (Sink.sink_id): unique within this process.
_sink_ids = itertools.count(1)

# WebSocket close codes (RFC 6455 §7.4.1 and the IANA registry) the adapter uses.
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_POLICY, CLOSE_TOO_BIG = (
    1000, 1001, 1002, 1008, 1009)


def going_away_notice(downtime: float, window: float) -> bytes:
    """The error frame of a planned stop: come back after ``downtime`` plus a delay of the
    device's own pick within ``window`` (the same bytes for every connection)."""
    return ServerProtocol.error(None, Unavailable(
        f"the server is restarting; reconnect in {downtime:g} s plus a random delay of up "
        f"to {window:g} s", code="SHUTTING_DOWN", retry_after=downtime, retry_spread=window))


def going_away_reason(downtime: float, window: float) -> str:
    """The close frame's reason of a planned stop, with the same hints as the notice."""
    return format_reason("SHUTTING_DOWN", downtime, window)


class Connection:
    max_in_flight = 64

    def __init__(self, services: Services, address: str, guard: Any = None) -> None:
        self.services = services
        self.address = address
        self.guard = guard  # the accept-level GuardedProtocol, when the shield saw this socket
        # Set by the transport adapter: drops the socket at once, for a peer that reads
        # nothing (it would not take a polite close frame either).
        self.abort_transport: Callable[[], None] | None = None
        # Set by the transport adapter: writes frames and then the close frame (code, reason)
        # straight to the socket, and closes it once they are out (a planned stop); with
        # ``ending``, stops reading it instead and leaves the closing to the process's exit.
        self.write_last: Callable[[list[bytes], int, bytes, bool], None] | None = None
        # ... and tells how many bytes the socket has not taken yet (the peer is not reading).
        self.unsent_bytes: Callable[[], int] = lambda: 0
        self.shield = services.shield
        self._frames = services.shield.new_frame_bucket()
        self._frames_authenticated = False
        self.protocol = ServerProtocol()
        self.user_id: int | None = None
        self.session_id: int | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._out: deque[bytes] = deque()
        # Bytes queued, the frame being written included: it sits in the transport's buffer
        # until the peer reads it, so it counts until the writer asks for the next one.
        self._out_bytes = 0
        self._writing = 0
        self._out_ready = asyncio.Event()
        self._progress = time.monotonic()  # when the writer last took a frame
        # Set when something a waiter may be waiting for happens: frames left the outbox,
        # the account's total fell, a bulk slot freed, or the connection is closing.
        self._wakeup = asyncio.Event()
        self._bulk_running = False
        self._bulk_bucket = services.shield.new_bulk_bucket()
        self._pending_updates: list[tuple[str, Any]] = []  # (stream, update), in order
        self._flush_scheduled = False
        self._window = asyncio.Semaphore(self.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_touch = 0.0
        self.refusals = 0
        self.sink_id = next(_sink_ids)
        self._device = DeviceLink(self)
        self._callers: dict[bool, Caller] = {}
        # Solved work this connection brought (a ticket at accept): it covers its first
        # expensive calls (Shield.prove).
        self.credit = getattr(guard, "credit", None)
        services.connections.add(self)
        services.by_address.setdefault(address, set()).add(self)
        services.metrics.connections.inc()

    # -- input ------------------------------------------------------------------------------
    async def receive(self, data: bytes) -> None:
        """Handle one frame. Returns once the call is started, not answered."""
        if self.services.stopping:
            # A planned stop answers the calls in flight and starts none: this one is not
            # answered, so the SDK sends it again (same random_id) to the next server.
            return
        if not self.shield.frame_allowed(self._frames, self.address, self.user_id is not None,
                                         session_id=self.session_id, user_id=self.user_id):
            self._send(self.protocol.error(None, RateLimited(
                "too many frames; slow down", retry_after=1.0)))
            self.close(CLOSE_POLICY, "RATE_LIMITED", 1.0)
            return
        event = self.protocol.receive(data)
        if isinstance(event, CallReceived):
            await self._window.acquire()
            task = asyncio.create_task(self._call(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(event, HelloReceived):
            await self._hello(event)
        elif isinstance(event, CallRejected):
            self._count(event.error)
            self._send(event.reply)
            self._refused(event.error)
        else:
            assert isinstance(event, Violation)
            self._count(event.error)
            self._strike(event.error.code)
            self._send(event.reply)
            if event.close:
                code = CLOSE_TOO_BIG if event.error.code == "FRAME_TOO_LARGE" else CLOSE_PROTOCOL
                self.close(code, event.error.code)

    async def _hello(self, hello: HelloReceived) -> None:
        services = self.services
        if self.guard is not None:
            self.guard.greeted = True
        user = session = state = None
        resumed: tuple[int, int] | None = None
        since: int | None = None
        try:
            if hello.token is None:
                # From a banned address only a token gets in (the door in shield/penalties.py).
                self.shield.check_banned(self.address)
            else:
                self.shield.check_rate("hello", self.address, None, None)
                if hello.ticket is not None:
                    resumed = services.resumption.check(hello.ticket, hello.token)
                if resumed is not None:
                    # Checked from memory, and attached with no await in between: a
                    # terminate that ends the session after this point finds us attached.
                    self.shield.check_session(*resumed)
                    self.login(resumed[1], resumed[0])
                else:
                    since = services.resumption.since()  # before the read (shared bus)
                    session, user = await authenticate(services, hello.token)
                    self.shield.check_session(session.id, session.user_id)
                    self.login(session.user_id, session.id)
        except PigeonError as exc:
            if isinstance(exc, Unauthorized):
                self.shield.strike(self.address, exc.code)
            self._send(self.protocol.error(None, exc))
            self.close(CLOSE_POLICY, exc.code, exc.retry_after, exc.retry_spread)
            return
        ticket = None
        if resumed is not None:
            assert hello.token is not None
            state = await services.store.get_state(resumed[1])
            if self.session_id != resumed[0]:
                return  # revoked (and told so) while we were reading
            self._touch(force=True)
            self.follow(state.streams)
            ticket = services.resumption.issue(resumed[0], resumed[1], hello.token)
        elif session is not None and hello.token is not None:
            # Terminating a session deletes it, then revokes the connections attached to it.
            # A hello that read the session before the delete may attach after the revoke
            # (issue 7, finding 4: such a connection stayed logged in). So it reads the
            # session again now that it is attached: either this read sees the delete, or
            # the delete committed after we attached and its revoke finds us.
            still, state = await asyncio.gather(
                services.store.session_by_token(hash_token(hello.token)),
                services.store.get_state(session.user_id))
            if self.session_id != session.id:
                return  # revoked (and told so) while we were reading
            if still is None:
                self.revoke("this session was terminated")
                return
            services.resumption.live(session.id, session.user_id, since)
            self._touch(force=True)
            self.follow(state.streams)
            ticket = services.resumption.issue(session.id, session.user_id, hello.token)
        settings = services.settings
        # Sized to the devices served now: after a crash they spread their returns over it.
        window = settings.restart_window(len(services.connections)) if ticket else None
        self._send(self.protocol.welcome(settings.server_name, user, self.session_id, state,
                                         self.shield.budget(), ticket, settings.endpoint_list,
                                         window))

    async def _call(self, call: CallReceived) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            method = METHODS[call.method]
            if method.auth and self.user_id is None:
                raise Unauthorized(f"{call.method} needs a logged-in session", code="AUTH_REQUIRED")
            handler = HANDLERS[call.method]
            shield = self.shield
            cost = shield.call_cost(call.method, call.params)
            shield.check_rate(call.method, self.address, self.user_id, self.session_id, cost)
            # Before the queue: a flood without work takes no slot.
            proven, self.credit = shield.prove(call.method, getattr(call.params, "pow", None),
                                               self.credit)
            if self.user_id is None and self.guard is not None:
                self.guard.protect(shield.spare_until(proven, self.credit))
            logged_in = self.user_id is not None
            if logged_in and shield.classify(call.method, True) is WorkClass.BULK:
                result = await self._bulk(WorkClass.BULK, handler, call, cost)
            else:
                async with shield.slot_for(call.method, logged_in, proven):
                    result = await handler(self._caller(proven), call.params)
        except PigeonError as exc:
            outcome = exc.code
            self._send(self.protocol.error(call.id, exc))
            self._refused(exc)
        except Exception:
            log.exception("%s failed", call.method)
            outcome = "INTERNAL"
            self._send(self.protocol.error(call.id, PigeonError("internal error; it was logged")))
        else:
            self._send(self.protocol.result(call.id, self.protocol.hold_back(result)))
        finally:
            self._window.release()
            self.services.metrics.count_request(call.method, outcome,
                                                time.perf_counter() - started)
        if self.user_id is not None:
            self._touch()

    async def _bulk(self, work: WorkClass, handler: Any, call: CallReceived,
                    cost: float = 1.0) -> Any:
        """A bulk call (history, differences, lists: results of up to megabytes) starts only
        while this connection and its account have room in their outboxes, one at a time on
        this connection and as one of the account's ``bulk_calls_per_account``: a peer that
        pipelines them and never reads makes us compute nothing more for it, and one that
        reads never has more than one result beyond ``outbox_bytes`` queued."""
        quota, user_id = self.services.quota, self.user_id
        assert user_id is not None
        # The cost cap first: a device over it is told when to come back (DEFERRED, harmless)
        # rather than queued, so its catching up never holds a bulk slot it has not earned.
        wait = self.shield.bulk_wait(self._bulk_bucket, cost)
        if wait:
            raise Unavailable(f"{call.method} deferred: this connection's bulk work is over "
                              f"its rate; call again in {wait:.2f} s", code="DEFERRED",
                              retry_after=round(wait, 3))
        while (self._bulk_running or self._out_bytes > self.services.settings.outbox_bytes
               or not quota.try_bulk(user_id)):
            if self.close_code is not None:
                raise Unavailable("the connection is closing")
            await self._wait()
        self._bulk_running = True
        try:
            async with self.shield.slot(work):
                return await handler(self._caller(), call.params)
        finally:
            self._bulk_running = False
            quota.end_bulk(user_id)  # wakes this connection's waiters too

    async def wait_writable(self) -> None:
        """Return once this connection may be read again: the bytes queued for it and for
        its account are back under their bounds, or it is closing. Meanwhile its socket is
        not read, so what the peer pipelines waits in its own buffers, not in ours."""
        bound, quota = self.services.settings.outbox_bytes, self.services.quota
        while self.close_code is None and (self._out_bytes > bound
                                           or quota.over(self.user_id)):
            await self._wait()

    async def _wait(self) -> None:
        """Wait for a wake-up (at most a second), then cut this connection if its peer has
        stopped reading for ``slow_consumer_seconds``."""
        self._wakeup.clear()
        with suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._wakeup.wait()
        if self._stalled():
            self.slow_consumer()

    def _stalled(self) -> bool:
        """Frames wait, and the writer has not taken one for ``slow_consumer_seconds``: the
        peer reads nothing. Checked whenever this connection waits, and on every frame
        queued for it (pushes reach a peer that sends nothing too)."""
        return self._out_bytes > 0 and (time.monotonic() - self._progress
                                        > self.services.settings.slow_consumer_seconds)

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def queued_bytes(self) -> int:
        return self._out_bytes

    def _refused(self, error: PigeonError) -> None:
        """A peer that keeps asking for what it is refused is not a client with a bug but a
        flood: past ``max_refusals`` (many more once logged in) its connection is closed,
        which costs it a reconnect through admission instead of costing us a frame each."""
        if not self.shield.enabled or error.code in _HARMLESS:
            return
        self.refusals += 1
        budget = self.shield.max_refusals * (8 if self.user_id is not None else 1)
        if self.refusals >= budget:
            self._strike("refusals")
            self.close(CLOSE_POLICY, "TOO_MANY_REFUSALS", error.retry_after or 1.0)

    def _strike(self, reason: str) -> None:
        # Logged in: the session pays, not the address other people's sessions may share.
        self.shield.strike(self.address, reason, session_id=self.session_id, user_id=self.user_id)

    def _count(self, error: PigeonError) -> None:
        self.services.metrics.protocol_errors.labels(error.code).inc()

    # -- identity ---------------------------------------------------------------------------
    def _caller(self, proven: bool = False) -> Caller:
        # Frozen, and the same for every call of this connection once its version is
        # negotiated: built once per kind (proven or not), not once per call.
        caller = self._callers.get(proven)
        if caller is None or caller.version != self.protocol.version:
            caller = self._callers[proven] = Caller(self.services, self._device, self.address,
                                                    self.protocol.version, proven)
        return caller

    def login(self, user_id: int, session_id: int) -> None:
        """Log this connection in; TOO_MANY_CONNECTIONS if the account has no room for it.
        Synchronous from the cap check to the attach, so racing hellos cannot overshoot."""
        self.logout()
        quota = self.services.quota
        quota.admit(self, user_id, session_id)
        self.user_id, self.session_id = user_id, session_id
        self.services.bus.attach(self)
        if self.reads_streams:  # its inbox: envelopes for it are pushed as they arrive
            self.services.bus.subscribe(self, device_stream(session_id))
        quota.join(self, self._out_bytes)
        if not self._frames_authenticated:
            # The authenticated budget at once (issue 7, finding 12): the anonymous burst
            # left after hello got an honest SDK, resending its pending calls, banned.
            self._frames_authenticated = True
            self._frames = self.shield.new_frame_bucket(authenticated=True)
        if self.guard is not None:
            self.guard.promote()
        self.shield.logged_in(self.address, session_id)

    def logout(self) -> None:
        if self.user_id is not None:
            self.services.bus.detach(self)
            self.services.quota.leave(self, self._out_bytes)
        if self.session_id is not None:
            self.shield.logged_out(self.address, self.session_id)
        self.user_id = self.session_id = None

    def _touch(self, force: bool = False) -> None:
        # last_active is for the sessions list; minute resolution is what people read there,
        # and it keeps this write off the hot path.
        now = time.time()
        if self.session_id is None or (not force and now - self._last_touch < 60):
            return
        self._last_touch = now
        task = asyncio.create_task(
            self.services.store.touch_session(self.session_id, self.address, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- output -----------------------------------------------------------------------------
    def push(self, update: Any) -> None:
        """Queue an update of the user's own stream; updates queued in one loop turn leave
        in one frame."""
        assert self.user_id is not None  # the bus pushes only to logged-in connections
        self.push_item(user_stream(self.user_id), update)

    @property
    def reads_streams(self) -> bool:
        return self.protocol.version >= 2

    def follow(self, streams: Iterable[str]) -> None:
        """Subscribe this logged-in device to the streams its state lists (a version-1 device
        reads none: it is told nothing of large chats but what it asks for)."""
        if self.reads_streams:
            for stream in streams:
                self.services.bus.subscribe(self, stream)

    def push_item(self, stream: str, item: Any) -> None:
        """Queue an item of ``stream`` (an update whose ``pts`` is its position there)."""
        self._pending_updates.append((stream, item))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_updates)

    def _flush_updates(self) -> None:
        self._flush_scheduled = False
        if not self._pending_updates:
            return
        pending, self._pending_updates = self._pending_updates, []
        self.services.metrics.updates_pushed.inc(len(pending))
        # One run of frames per run of items of one stream, so that the order across
        # streams is the order they were pushed in. Several frames if one would outgrow
        # what a device accepts (issue 7, finding 3).
        start = 0
        while start < len(pending):
            stream, end = pending[start][0], start + 1
            while end < len(pending) and pending[end][0] == stream:
                end += 1
            for frame in self.protocol.update_frames([u for _, u in pending[start:end]],
                                                     stream):
                self._send(frame)
            start = end

    def _send(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        settings, size = self.services.settings, len(frame)
        if self._out_bytes and (len(self._out) >= settings.outbox_frames
                                or self._out_bytes + size > 4 * settings.outbox_bytes
                                or self._stalled()):
            self.slow_consumer()
            return
        if not self._out_bytes:
            self._progress = time.monotonic()  # the writer's clock starts with work to do
        self._out.append(frame)
        self._out_bytes += size
        if self.user_id is not None:
            self.services.quota.add_bytes(self.user_id, size)
        self._out_ready.set()

    async def next_frame(self) -> bytes | None:
        """The next frame to write, or None once the connection should close. Asking for
        it says that the previous one has been written."""
        if self._writing:
            self._dequeued(self._writing)
            self._writing = 0
        while not self._out:
            if self.close_code is not None:
                return None
            self._out_ready.clear()
            await self._out_ready.wait()
        frame = self._out.popleft()
        self._writing = len(frame)
        self._progress = time.monotonic()
        return frame

    def _dequeued(self, size: int) -> None:
        self._out_bytes -= size
        if self.user_id is not None:
            self.services.quota.add_bytes(self.user_id, -size)
        self._wakeup.set()

    def slow_consumer(self) -> None:
        """Cut a device that does not read, and drop what was queued for it: it resyncs with
        get_difference when it comes back."""
        if self.close_code is None:
            self.services.metrics.slow_consumers.inc()
            # It resyncs when it returns: not at once, the bulk of a resync is what it
            # could not take.
            self.close(CLOSE_POLICY, "SLOW_CONSUMER", SLOW_CONSUMER_RETRY)
            if self.abort_transport is not None:
                self.abort_transport()
        self._drop_outbox()

    def _drop_outbox(self) -> None:
        self._out.clear()
        self._writing = 0
        if self._out_bytes:
            self._dequeued(self._out_bytes)

    def replaced(self) -> None:
        """A newer connection of the same session took this one's place (the device
        reconnected while this socket still looked open)."""
        self._send(self.protocol.error(None, RateLimited(
            "this session opened a newer connection; this one is closed",
            code="TOO_MANY_CONNECTIONS", retry_after=RETRY_AFTER)))
        self.logout()
        self.close(CLOSE_POLICY, "TOO_MANY_CONNECTIONS", RETRY_AFTER)

    def revoke(self, reason: str) -> None:
        """The session was terminated: tell the device why, then close."""
        self._send(self.protocol.error(None, Unauthorized(reason, code="SESSION_INVALID")))
        self.logout()
        self.close(CLOSE_POLICY, "SESSION_INVALID")

    def banned(self, seconds: float, what: str = "session") -> None:
        """This connection's session or account was banned: say for how long, then close."""
        self._send(self.protocol.error(None, RateLimited(
            f"this {what} is refused for {seconds:.0f} s after repeated abuse",
            code="BANNED", retry_after=round(seconds, 3))))
        self.close(CLOSE_POLICY, "BANNED", round(seconds, 3))

    def close(self, code: int, reason: str, retry_after: float | None = None,
              retry_spread: float | None = None) -> None:
        """Close with ``reason`` (an error code) and, for a device that should come back,
        when: the close frame carries the hints too, for a device whose error frame was
        dropped or never read (protocol/closing.py)."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = format_reason(reason, retry_after, retry_spread) if reason else ""
            self._out_ready.set()
            self._wakeup.set()

    def shutting_down(self, downtime: float = 0.0, window: float = 0.0) -> None:
        """The going-away notice: come back after ``downtime`` plus a delay picked at random
        within ``window``, so that a planned restart makes no herd (issue 13)."""
        self._send(going_away_notice(downtime, window))
        self.close(CLOSE_GOING_AWAY, "SHUTTING_DOWN", downtime, window)

    def say_goodbye(self) -> None:
        """Once closing: hand what is queued (the notice last) and the close frame to the
        socket now, and close it without waiting for the peer's side of the handshake. A stop
        with thousands of peers then costs a write each, not each writer's round trips on a
        busy event loop (issue 13: 5,000 closes did not finish within a second)."""
        if self.write_last is None or self.close_code is None:
            return
        frames = list(self._out)
        self._drop_outbox()
        self.write_last(frames, self.close_code, self.close_reason.encode(), False)

    def last_words(self, notice: bytes, reason: str) -> None:
        """A stop that ends its process: the notice (a :func:`going_away_notice`, after what
        is queued) and the close frame (its ``reason`` and hints) written to the socket now,
        which then reads nothing more and is closed by the process's exit. Nothing here
        wakes this connection's tasks: at 10,000 connections, unwinding each handler and
        writer cost the stop seconds of a loaded event loop, for bookkeeping that the exit
        throws away (issue 13)."""
        if self.write_last is None:  # no socket of ours to write to: the writer's usual way
            if self.close_code is None:
                self._send(notice)
                self.close(CLOSE_GOING_AWAY, "")
                self.close_reason = reason
            return
        frames = list(self._out)
        if self.close_code is None:
            frames.append(notice)
            self.close_code, self.close_reason = CLOSE_GOING_AWAY, reason
        self._drop_outbox()
        self.write_last(frames, self.close_code, self.close_reason.encode(), True)

    async def drain(self) -> None:
        """Wait for every call in flight to be answered."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """The calls started and not yet answered."""
        return list(self._tasks)

    def abort(self) -> None:
        """Drop the socket now, without waiting for the peer's side of the close handshake."""
        if self.abort_transport is not None:
            self.abort_transport()

    def finished(self) -> None:
        # Calls in flight run to the end although their answers can no longer reach this
        # device: a send that commits must still be pushed to its recipients. Nothing else
        # stays: the bus and the account forget this connection, its outbox is dropped.
        self.logout()
        self._drop_outbox()
        peers = self.services.by_address.get(self.address)
        if peers is not None:
            peers.discard(self)
            if not peers:
                del self.services.by_address[self.address]
        if self in self.services.connections:
            self.services.connections.discard(self)
            self.services.metrics.connections.dec()


class DeviceLink:
    """A connection as handlers see it (:class:`~.services.Device`): its identity and
    logging it in or out, nothing else."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    @property
    def user_id(self) -> int | None:
        return self._connection.user_id

    @property
    def session_id(self) -> int | None:
        return self._connection.session_id

    @property
    def sink_id(self) -> int:
        return self._connection.sink_id

    def ensure_room(self, user_id: int) -> None:
        self._connection.services.quota.ensure_room(user_id, self._connection)

    def log_in(self, user_id: int, session_id: int) -> None:
        self._connection.login(user_id, session_id)

    def log_out(self) -> None:
        self._connection.logout()

    def follow(self, streams: Iterable[str]) -> None:
        self._connection.follow(streams)
