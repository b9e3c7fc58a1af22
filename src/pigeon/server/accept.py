"""Admission at accept: the shield sees each TCP connection before aiohttp parses a byte.

aiohttp's protocol factory is wrapped in :class:`GuardedProtocol`, which asks the shield
whether to take the connection at all (bans, caps per address and prefix, the unauthenticated
pool), and aborts it if its first Pigeon frame has not arrived within the hello deadline:
a slowloris peer that trickles its HTTP upgrade, or never sends ``hello``, holds a socket for
seconds, not for ever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pigeon.shield.guard import Shield


class GuardedProtocol(asyncio.Protocol):
    __slots__ = ("inner", "shield", "registry", "transport", "ticket", "greeted", "_timer")

    def __init__(self, inner: Any, shield: Shield, registry: dict[Any, GuardedProtocol]) -> None:
        self.inner = inner
        self.shield = shield
        self.registry = registry
        self.transport: asyncio.BaseTransport | None = None
        self.ticket: Any = None
        self.greeted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        address = peer[0] if peer else "unknown"
        decision = self.shield.accept(address)
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

    def _deadline(self) -> None:
        if not self.greeted and self.transport is not None:
            self.shield._refuse("hello_deadline")  # noqa: SLF001
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.ticket is not None:
            self.inner.data_received(data)

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
        if self.ticket is None:
            return
        self.registry.pop(self.transport, None)
        self.shield.admission.release(self.ticket)
        self.inner.connection_lost(exc)

    def promote(self) -> None:
        """The connection logged in: it leaves the unauthenticated pool."""
        if self.ticket is not None:
            self.shield.admission.promote(self.ticket)
