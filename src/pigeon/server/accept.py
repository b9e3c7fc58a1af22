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
"""

from __future__ import annotations

import asyncio
from typing import Any

from pigeon.shield.guard import PROBATION, Shield
from pigeon.shield.ticket import MAX_REQUEST_LINE


class GuardedProtocol(asyncio.Protocol):
    __slots__ = ("inner", "shield", "registry", "transport", "ticket", "greeted", "_timer",
                 "address", "credit", "_head")

    def __init__(self, inner: Any, shield: Shield, registry: dict[Any, GuardedProtocol]) -> None:
        self.inner = inner
        self.shield = shield
        self.registry = registry
        self.transport: asyncio.BaseTransport | None = None
        self.ticket: Any = None
        self.greeted = False
        self._timer: asyncio.TimerHandle | None = None
        self.address = "unknown"
        self.credit: Any = None  # solved work its ticket bought (shield.guard.Credit)
        self._head: bytearray | None = None  # on probation: the request so far

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = peer[0] if peer else "unknown"
        decision = self.shield.accept(self.address)
        if decision is PROBATION:
            self._hold()
            return
        self._admit(decision, b"")

    def _admit(self, decision: Any, head: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if decision is None or decision.ticket is None:
            transport.abort()
            return
        if decision.evict is not None and decision.evict.handle is not None:
            decision.evict.handle.abort()  # random early drop of an unauthenticated idler
        self.ticket = decision.ticket
        self.ticket.handle = transport
        self.registry[transport] = self
        if self.shield.enabled:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.shield.hello_deadline, self._deadline)
        self.inner.connection_made(transport)
        if head:
            self.inner.data_received(head)

    # -- probation: a rationed socket may still bring a ticket --------------------------------
    def _hold(self) -> None:
        held, evicted = self.shield.hold(self)
        if evicted is not None:
            evicted._drop()
        if not held:
            assert self.transport is not None
            self.transport.abort()
            return
        self._head = bytearray()
        self._timer = asyncio.get_running_loop().call_later(self.shield.probation_wait,
                                                             self._drop)

    def _drop(self) -> None:
        if self._head is not None:
            self._head = None
            self.shield.unhold(self)
            if self._timer is not None:
                self._timer.cancel()
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
        decision, credit = self.shield.admit_ticket(self.address, bytes(head))
        if decision is None:
            assert self.transport is not None
            self.transport.write(self.shield.challenge_response())  # type: ignore[attr-defined]
            self.transport.close()
            return
        self.credit = credit
        self._admit(decision, bytes(head))
        if credit is not None:
            self.protect(credit.expires)

    def _deadline(self) -> None:
        if not self.greeted and self.transport is not None:
            self.shield._refuse("hello_deadline")  # noqa: SLF001
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.ticket is not None:
            self.inner.data_received(data)
        elif self._head is not None:
            self._judge(data)

    def eof_received(self) -> bool | None:
        if self.ticket is not None:
            return self.inner.eof_received()  # type: ignore[no-any-return]
        return None

    def pause_writing(self) -> None:
        if self.ticket is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.ticket is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._head is not None:
            self._head = None
            self.shield.unhold(self)
        if self.ticket is None:
            return
        self.registry.pop(self.transport, None)
        self.shield.admission.release(self.ticket)
        self.inner.connection_lost(exc)

    def protect(self, until: float) -> None:
        """The connection brought solved work: random early drop passes over it until then
        (a newcomer needs a few seconds in the pool to get a code and sign in)."""
        if self.ticket is not None:
            self.ticket.protected_until = max(self.ticket.protected_until, until)

    def promote(self) -> None:
        """The connection logged in: it leaves the unauthenticated pool."""
        if self.ticket is not None:
            self.shield.admission.promote(self.ticket)
