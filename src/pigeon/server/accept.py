"""Admission at accept: the shield sees each TCP connection before aiohttp parses a byte.

aiohttp's protocol factory is wrapped in :class:`GuardedProtocol`, which asks the shield
whether to take the connection at all (bans, caps per address and prefix, the unauthenticated
pool), and aborts it if its first Pigeon frame has not arrived within the hello deadline:
a slowloris peer that trickles its HTTP upgrade, or never sends ``hello``, holds a socket for
seconds, not for ever.

A socket that the shield's ration for unknown addresses refuses is put on probation: its
request line is read here (aiohttp never sees it), and it gets in only with a proof-of-work
ticket in its URL; otherwise it is answered 503 with a challenge and closed
(shield/ticket.py). Sockets on probation are few and short-lived: at most ``max_probation``
(the oldest is dropped to make room) for at most ``probation_wait`` seconds.

A socket from a known address that the return pacer turns away (a herd coming back after a
crash, shield/pacing.py) waits the same way for its request line: with ``?waiting=1`` (its
device has a call waiting) it may come in past the pacer; otherwise it is answered 503 with
its own slot as ``Retry-After``.

Behind a trusted proxy (server/edge.py) the peer's address is the proxy's, so admission
waits until the client's address is known:

* with ``proxy_protocol``, a trusted peer must open with a PROXY v1/v2 header; it is parsed
  here (server/proxy_header.py) before aiohttp sees a byte, and the shield admits the address
  it names (or puts it on probation, as above). A peer whose header is missing or malformed
  is aborted;
* otherwise the WebSocket handler reads ``X-Forwarded-For`` and calls :meth:`admit_forwarded`
  before upgrading; a rationed client address then needs its ticket in the URL as well. Until
  then the connection holds no admission ticket, only the hello deadline: it comes from a
  proxy the operator vouched for.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from pigeon.shield.guard import PROBATION, Shield
from pigeon.shield.ticket import MAX_REQUEST_LINE

from .edge import Edge, normalize
from .proxy_header import ProxyHeaderError, ProxyHeaderParser


class GuardedProtocol(asyncio.Protocol):
    __slots__ = ("inner", "shield", "registry", "edge", "transport", "address", "ticket",
                 "greeted", "credit", "_started", "_header", "_head", "_timer", "_refusing",
                 "_slot", "_linger")

    def __init__(self, inner: Any, shield: Shield, registry: dict[Any, GuardedProtocol],
                 edge: Edge | None = None) -> None:
        self.inner = inner
        self.shield = shield
        self.registry = registry
        self.edge = edge or Edge()
        self.transport: asyncio.BaseTransport | None = None
        self.address = "unknown"  # the client's, once known (the PROXY header's if any)
        self.ticket: Any = None
        self.greeted = False
        self.credit: Any = None  # solved work its ticket bought (shield.guard.Credit)
        self._started = False  # aiohttp's protocol has been handed the connection
        self._header: ProxyHeaderParser | None = None
        self._head: bytearray | None = None  # on probation: the request so far
        self._timer: asyncio.TimerHandle | None = None
        self._refusing = False  # answered 503 at a cap; closes once its request is read
        self._slot: float | None = None  # turned away by the return pacer: its Retry-After
        self._linger: _Linger | None = None  # closing: what the peer still sends is dropped

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = normalize(peer[0]) if peer else "unknown"
        if not self.edge.trusted(self.address):
            self._decide(b"")
            return
        self._arm_deadline()  # a proxy's header and hello are due like anyone's
        if self.edge.proxy_protocol:
            self._header = ProxyHeaderParser()
        else:
            self._start(b"")  # admission when the request's X-Forwarded-For is read

    def _decide(self, head: bytes) -> None:
        """Ask the shield about ``self.address``; ``head``: bytes already read past a PROXY
        header."""
        decision = self.shield.accept(self.address)
        if decision is PROBATION:
            self._hold(head)
        elif decision is not None and decision.reason == "paced_return":
            # Its request line may say a call is waiting (shield.admit_waiting); else it is
            # told its slot.
            self._slot = decision.retry_after
            self._hold(head)
        elif self._admit(decision):
            self._start(head)

    def _admit(self, decision: Any, polite: bool = True) -> bool:
        assert self.transport is not None
        if decision is None or (decision.ticket is None and not polite):
            self.transport.abort()  # banned: not a byte more (or aiohttp holds the socket)
            return False
        if decision.ticket is None:
            self._refuse_politely(self.shield.refusal_response(decision.reason,
                                                               decision.retry_after))
            return False
        if decision.evict is not None and decision.evict.handle is not None:
            decision.evict.handle.abort()  # random early drop of an unauthenticated idler
        self.ticket = decision.ticket
        self.ticket.handle = self.transport
        if self.shield.enabled:
            self._arm_deadline()
        return True

    def _start(self, head: bytes) -> None:
        self.registry[self.transport] = self
        self._started = True
        self.inner.connection_made(self.transport)
        if head:
            self.inner.data_received(head)

    def admit_forwarded(self, address: str, request_line: bytes = b"") -> bool:
        """The WebSocket handler learned the client's address from X-Forwarded-For; False
        when the shield refuses it (the connection is then aborted, or answered with a
        challenge when the client's address is rationed and its URL carries no ticket)."""
        if self.ticket is not None:
            return True
        self.address = address
        decision = self.shield.accept(address)
        if decision is PROBATION:
            decision, credit = self.shield.admit_ticket(address, request_line)
            if decision is None:
                assert self.transport is not None
                self.transport.write(self.shield.challenge_response())  # type: ignore[attr-defined]
                self.transport.close()
                return False
            self.credit = credit
            admitted = self._admit(decision, polite=False)
            if admitted and credit is not None:
                self.protect(credit.expires)
            return admitted
        return self._admit(decision, polite=False)

    def _arm_deadline(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.shield.hello_deadline, self._deadline)

    def _deadline(self) -> None:
        if not self.greeted and self.transport is not None:
            self.shield._refuse("hello_deadline")  # noqa: SLF001
            self.transport.abort()

    def _refuse_politely(self, response: bytes) -> None:
        """Answer an over-cap socket with when to come back, then close once its request is
        read (closing with it unread would reset the connection, and the answer with it);
        at the latest after ``probation_wait``."""
        assert self.transport is not None
        self.transport.write(response)  # type: ignore[attr-defined]
        self._head = None
        self._refusing = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self.shield.probation_wait,
                                                            self.transport.abort)

    # -- probation: a rationed socket may still bring a ticket --------------------------------
    def _hold(self, head: bytes) -> None:
        # A returning device turned away by the pacer is not held in the probation pool:
        # its address is known (TCP proved it), the herd's sockets would fill the pool, and
        # a chatting device's socket must not be refused its lane for want of room there.
        if self._slot is None:
            held, evicted = self.shield.hold(self)
            if evicted is not None:
                evicted._drop()
            if not held:
                assert self.transport is not None
                self.transport.abort()
                return
        if self._timer is not None:
            self._timer.cancel()
        self._head = bytearray()
        self._timer = asyncio.get_running_loop().call_later(self.shield.probation_wait,
                                                             self._drop)
        if head:
            self._judge(head)

    def _drop(self) -> None:
        if self._head is not None:
            self._head = None
            self.shield.unhold(self)
            if self._timer is not None:
                self._timer.cancel()
            if self._slot is not None and self.transport is not None:
                # A returning device, slow to send its request line: still told its slot.
                slot, self._slot = self._slot, None
                self._refuse_politely(self.shield.refusal_response("paced_return", slot))
                return
            if self.transport is not None:
                self.transport.abort()

    def _judge(self, data: bytes) -> None:
        head = self._head
        assert head is not None
        head += data
        if b"\r\n" not in head:
            if len(head) > MAX_REQUEST_LINE:
                self._drop()
            return
        self._head = None
        self.shield.unhold(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._slot is not None:
            self._judge_paced(bytes(head), self._slot)
            return
        decision, credit = self.shield.admit_ticket(self.address, bytes(head))
        if decision is None:
            assert self.transport is not None
            self.transport.write(self.shield.challenge_response())  # type: ignore[attr-defined]
            self.transport.close()
            return
        self.credit = credit
        if self._admit(decision):
            self._start(bytes(head))
            if credit is not None:
                self.protect(credit.expires)

    def _judge_paced(self, head: bytes, slot: float) -> None:
        """A socket the return pacer turned away sent its request line: in if it says a call
        is waiting (and that lane has room), else answered with its slot."""
        self._slot = None
        decision = self.shield.admit_waiting(self.address, head)
        if decision is None:
            assert self.transport is not None
            self.transport.write(self.shield.refusal_response(  # type: ignore[attr-defined]
                "paced_return", slot))
            self.transport.close()
        elif self._admit(decision):
            self._start(head)

    # -- bytes and flow control -----------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._started and self._linger is None:
            self.inner.data_received(data)
        elif self._linger is not None:
            self._linger.drop(len(data))
        elif self._refusing:
            if self.transport is not None:
                self.transport.close()
        elif self._header is not None:
            self._read_header(data)
        elif self._head is not None:
            self._judge(data)

    def _read_header(self, data: bytes) -> None:
        assert self._header is not None and self.transport is not None
        try:
            header = self._header.feed(data)
        except ProxyHeaderError:
            self.shield._refuse("proxy_header")  # noqa: SLF001
            self.transport.abort()
            return
        if header is None:
            return
        self._header = None
        if header.source is not None:  # LOCAL or UNKNOWN: the proxy's own connection
            self.address = normalize(header.source[0])
        if self.edge.trusted(self.address):
            # a proxy in front of the proxy: X-Forwarded-For decides
            self._start(header.rest)
        else:
            self._decide(header.rest)

    def eof_received(self) -> bool | None:
        if self._linger is not None:
            self._linger.done()
            return None  # the transport closes: nothing unread is left to reset it
        if self._started:
            return self.inner.eof_received()  # type: ignore[no-any-return]
        return None

    def pause_writing(self) -> None:
        if self._started:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.done()
        if self._timer is not None:
            self._timer.cancel()
        if self._head is not None:
            self._head = None
            self.shield.unhold(self)
        if self.ticket is not None:
            self.shield.release(self.ticket)
        if not self._started:
            return
        self.registry.pop(self.transport, None)
        self.inner.connection_lost(exc)

    async def linger(self, seconds: float, max_bytes: int) -> None:
        """Close gracefully a connection whose peer may still be sending: our side is shut
        for writing (after what is queued, a close frame), and what still comes is read and
        dropped until the peer closes its side, for at most ``seconds`` and ``max_bytes``;
        past them the socket is dropped.

        Closing a socket with bytes unread makes the kernel answer with a reset, and a reset
        can destroy what we wrote last before the peer reads it: a peer whose frame aiohttp
        refused half-way (over ``max_msg_size``) lost the close frame (1009) that said why,
        and saw an abnormal close (1006) instead, the more often the larger the frame."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._linger is not None:
            return
        linger = self._linger = _Linger(asyncio.get_running_loop(), max_bytes)
        stream = cast(asyncio.Transport, transport)
        stream.resume_reading()  # aiohttp may have paused it; what comes now is dropped
        if stream.can_write_eof():  # not under TLS: there the peer's close ends it
            stream.write_eof()
        try:
            async with asyncio.timeout(seconds):
                await linger.finished
        except TimeoutError:
            pass
        if not linger.ended:
            transport.abort()

    def protect(self, until: float) -> None:
        """The connection brought solved work: random early drop passes over it until then
        (a newcomer needs a few seconds in the pool to get a code and sign in)."""
        if self.ticket is not None:
            self.ticket.protected_until = max(self.ticket.protected_until, until)

    def logged_in(self) -> None:
        """An HTTP request on this connection carried a valid session token, as a WebSocket's
        hello does: the hello deadline (against slowloris, 5 s after accept) no longer
        applies, and the connection leaves the unauthenticated pool. Otherwise a kept-alive
        upload connection, or one slow request (completing a 2 GiB file takes seconds), is
        cut off 5 s after it was opened."""
        self.greeted = True
        self.promote()

    def promote(self) -> None:
        """The connection logged in: it leaves the unauthenticated pool."""
        if self.ticket is not None:
            self.shield.promote(self.ticket)


class _Linger:
    """A closing connection's state while its peer's last bytes are read and dropped."""

    __slots__ = ("finished", "left", "over", "ended")

    def __init__(self, loop: asyncio.AbstractEventLoop, max_bytes: int) -> None:
        self.finished: asyncio.Future[None] = loop.create_future()
        self.left = max_bytes
        self.over = False  # the peer sent more than we read for it
        self.ended = False  # the peer closed its side, or the connection is gone

    def drop(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            self.over = True
            self.done()

    def done(self) -> None:
        self.ended = not self.over
        if not self.finished.done():
            self.finished.set_result(None)
