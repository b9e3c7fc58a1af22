"""One client connection, independent of the transport that carries its frames.

The transport adapter feeds whole frames to :meth:`Connection.receive` and drains
:meth:`Connection.next_frame` to the socket. Between them: the sans-I/O protocol, the
dispatcher, and two bounds that keep one peer from holding unbounded memory: at most
``max_in_flight`` calls at once (the adapter stops reading while the window is full) and
at most ``outbox_frames`` frames waiting to be written (a device that does not read is cut
off; it resyncs with get_difference when it returns).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from pigeon.protocol.errors import PigeonError, RateLimited, Unauthorized, Unavailable
from pigeon.protocol.frames import (
    CallReceived, CallRejected, HelloReceived, ServerProtocol, Violation,
)
from pigeon.protocol.methods import METHODS
from pigeon.protocol.streams import user_stream

from .dispatch import HANDLERS
from .services import Caller, Services
from .sessions import authenticate

log = logging.getLogger("pigeon.connection")

# Refusals that an honest client meets in normal use (a wrong code, a taken username, a chat
# it just left); they do not count towards closing its connection.
_HARMLESS = frozenset({
    "CODE_INVALID", "SIGN_UP_REQUIRED", "USERNAME_TAKEN", "USER_NOT_FOUND", "MESSAGE_NOT_FOUND",
    "NOT_A_MEMBER", "ALREADY_MEMBER", "SESSION_NOT_FOUND", "PEER_IS_SELF", "OVERLOADED",
    "POW_REQUIRED",
})

# WebSocket close codes (RFC 6455 §7.4.1 and the IANA registry) the adapter uses.
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_POLICY, CLOSE_TOO_BIG = (
    1000, 1001, 1002, 1008, 1009)


class Connection:
    max_in_flight = 64

    def __init__(self, services: Services, address: str, guard: Any = None) -> None:
        self.services = services
        self.address = address
        self.guard = guard  # the accept-level GuardedProtocol, when the shield saw this socket
        self.shield = services.shield
        self._frames = services.shield.new_frame_bucket()
        self.protocol = ServerProtocol()
        self.user_id: int | None = None
        self.session_id: int | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._out: deque[bytes] = deque()
        self._out_ready = asyncio.Event()
        self._pending_updates: list[Any] = []
        self._flush_scheduled = False
        self._window = asyncio.Semaphore(self.max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_touch = 0.0
        self.refusals = 0
        services.connections.add(self)
        services.by_address.setdefault(address, set()).add(self)
        services.metrics.connections.inc()

    # -- input ------------------------------------------------------------------------------
    async def receive(self, data: bytes) -> None:
        """Handle one frame. Returns once the call is started, not answered."""
        if not self.shield.frame_allowed(self._frames, self.address, self.user_id is not None,
                                         session_id=self.session_id, user_id=self.user_id):
            self._send(self.protocol.error(None, RateLimited(
                "too many frames; slow down", retry_after=1.0)))
            self.close(CLOSE_POLICY, "RATE_LIMITED")
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
        try:
            if hello.token is None:
                # From a banned address only a token gets in (the door in shield/penalties.py).
                self.shield.check_banned(self.address)
            else:
                self.shield.check_rate("hello", self.address, None, None)
                session, user = await authenticate(services, hello.token)
                self.shield.check_session(session.id, session.user_id)
        except PigeonError as exc:
            if isinstance(exc, Unauthorized):
                self.shield.strike(self.address, exc.code)
            self._send(self.protocol.error(None, exc))
            self.close(CLOSE_POLICY, exc.code)
            return
        if session is not None:
            self.login(session.user_id, session.id)
            state = await services.store.get_state(session.user_id)
            self._touch(force=True)
        self._send(self.protocol.welcome(services.settings.server_name, user,
                                         session.id if session else None, state))

    async def _call(self, call: CallReceived) -> None:
        started = time.perf_counter()
        outcome = "ok"
        try:
            method = METHODS[call.method]
            if method.auth and self.user_id is None:
                raise Unauthorized(f"{call.method} needs a logged-in session", code="AUTH_REQUIRED")
            handler = HANDLERS[call.method]
            shield = self.shield
            shield.check_rate(call.method, self.address, self.user_id, self.session_id,
                              shield.call_cost(call.method, call.params))
            async with shield.slot(shield.classify(call.method, self.user_id is not None)):
                result = await handler(Caller(self.services, self, self.address), call.params)
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
            self.close(CLOSE_POLICY, "TOO_MANY_REFUSALS")

    def _strike(self, reason: str) -> None:
        # Logged in: the session pays, not the address other people's sessions may share.
        self.shield.strike(self.address, reason, session_id=self.session_id, user_id=self.user_id)

    def _count(self, error: PigeonError) -> None:
        self.services.metrics.protocol_errors.labels(error.code).inc()

    # -- identity ---------------------------------------------------------------------------
    def login(self, user_id: int, session_id: int) -> None:
        self.logout()
        self.user_id, self.session_id = user_id, session_id
        self.services.bus.attach(self)
        if self.guard is not None:
            self.guard.promote()
        self.shield.logged_in(self.address, session_id)

    def logout(self) -> None:
        if self.user_id is not None:
            self.services.bus.detach(self)
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
        """Queue an update; updates queued in one loop turn leave in one frame."""
        self._pending_updates.append(update)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_updates)

    def _flush_updates(self) -> None:
        self._flush_scheduled = False
        if self._pending_updates:
            updates, self._pending_updates = self._pending_updates, []
            self.services.metrics.updates_pushed.inc(len(updates))
            # Several frames if one would outgrow what a device accepts (issue 7, finding 3).
            assert self.user_id is not None  # the bus pushes only to logged-in connections
            for frame in self.protocol.update_frames(updates, user_stream(self.user_id)):
                self._send(frame)

    def _send(self, frame: bytes) -> None:
        if self.close_code is not None:
            return
        if len(self._out) >= self.services.settings.outbox_frames:
            self.services.metrics.slow_consumers.inc()
            self.close(CLOSE_POLICY, "SLOW_CONSUMER")
            return
        self._out.append(frame)
        self._out_ready.set()

    async def next_frame(self) -> bytes | None:
        """The next frame to write, or None once the connection should close."""
        while not self._out:
            if self.close_code is not None:
                return None
            self._out_ready.clear()
            await self._out_ready.wait()
        return self._out.popleft()

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
        self.close(CLOSE_POLICY, "BANNED")

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            self._out_ready.set()

    def shutting_down(self) -> None:
        self._send(self.protocol.error(None, Unavailable("the server is restarting",
                                                         code="SHUTTING_DOWN")))
        self.close(CLOSE_GOING_AWAY, "SHUTTING_DOWN")

    async def drain(self) -> None:
        """Wait for every call in flight to be answered."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def finished(self) -> None:
        # Calls in flight run to the end although their answers can no longer reach this
        # device: a send that commits must still be pushed to its recipients.
        self.logout()
        peers = self.services.by_address.get(self.address)
        if peers is not None:
            peers.discard(self)
            if not peers:
                del self.services.by_address[self.address]
        if self in self.services.connections:
            self.services.connections.discard(self)
            self.services.metrics.connections.dec()
