"""Raw WebSocket connections over asyncio streams, bound to a chosen source address.

Thin: bytes in and out through :mod:`.wire`. :class:`RawWS` is one connection;
:class:`Rpc` adds Pigeon calls on top (ids, answers matched to calls) for the setup and
for the attackers that make calls.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

from . import wire


class Refused(Exception):
    """The server did not accept the connection (reset, timeout, or an HTTP status, with
    its Retry-After if it said when to come back)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Closed(Exception):
    """The connection closed before the answer came."""


class CallFailed(Exception):
    """The server answered a call with an error frame."""

    def __init__(self, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retry_after = code, message, retry_after


async def open_tcp(host: str, port: int, local: str | None,
                   timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(local, 0) if local else None),
            timeout)
    except (TimeoutError, OSError) as exc:
        raise Refused(f"connect: {type(exc).__name__}") from None


class RawWS:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._parser = wire.FrameParser()
        self._frames: deque[tuple[int, bytes]] = deque()
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, local: str | None = None,
                      timeout: float = 5.0) -> RawWS:
        reader, writer = await open_tcp(host, port, local, timeout)
        try:
            writer.write(wire.handshake_request(host, port))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = wire.response_status(head)
        except (TimeoutError, OSError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, wire.WireError) as exc:
            writer.transport.abort()
            raise Refused(f"handshake: {type(exc).__name__}") from None
        if status != 101:
            writer.transport.abort()
            # A challenge (rationed: an address the server does not know) or a cap.
            kind = " challenge" if b"pigeon-challenge" in head.lower() else ""
            raise Refused(f"http {status}{kind}", wire.retry_after(head))
        return cls(reader, writer)

    def write(self, payload: bytes, opcode: int = wire.OP_BINARY) -> None:
        self.writer.write(wire.encode_frame(payload, opcode))

    async def send(self, payload: bytes, opcode: int = wire.OP_BINARY) -> None:
        self.write(payload, opcode)
        await self.writer.drain()

    async def recv(self) -> tuple[int, bytes] | None:
        """The next data frame, or None once the connection is closed. Pings are answered."""
        while True:
            while self._frames:
                opcode, payload = self._frames.popleft()
                if opcode == wire.OP_PING:
                    self.write(payload, wire.OP_PONG)
                elif opcode == wire.OP_CLOSE:
                    self.abort()
                    return None
                elif opcode != wire.OP_PONG:
                    return opcode, payload
            try:
                data = await self.reader.read(65536)
            except OSError:
                data = b""
            if not data:
                self.abort()
                return None
            try:
                self._frames.extend(self._parser.feed(data))
            except wire.WireError:
                self.abort()
                return None

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()


class Rpc:
    """Pigeon calls over a :class:`RawWS`: any number in flight, answers matched by id."""

    def __init__(self, ws: RawWS) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.done = asyncio.Event()
        #: the error frame about the connection (no id) after the welcome: a going-away
        #: notice, a ban, a replacement
        self.farewell: dict[str, Any] | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, host: str, port: int, local: str | None = None, token: str | None = None,
                   timeout: float = 5.0, ticket: str | None = None) -> Rpc:
        ws = await RawWS.connect(host, port, local, timeout)
        rpc = cls(ws)
        try:
            await ws.send(wire.hello(token, ticket=ticket))
            frame = await asyncio.wait_for(asyncio.shield(rpc.welcome), timeout)
        except (TimeoutError, OSError, Closed) as exc:
            rpc.close()
            raise Refused(f"hello: {type(exc).__name__}") from None
        except CallFailed:
            rpc.close()
            raise
        assert frame.get("t") == "welcome"
        return rpc

    async def _read(self) -> None:
        try:
            while (msg := await self.ws.recv()) is not None:
                frame = wire.decode(msg[1])
                if frame is None:
                    continue
                kind = frame.get("t")
                if kind in ("result", "error") and frame.get("id") is not None:
                    fut = self._calls.pop(frame["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
                elif kind == "welcome" and not self.welcome.done():
                    self.welcome.set_result(frame)
                elif kind == "error" and not self.welcome.done():
                    self.welcome.set_exception(_failure(frame))
                elif kind == "error":
                    self.farewell = frame
        finally:
            self.done.set()
            if not self.welcome.done():
                self.welcome.set_exception(Closed("closed before welcome"))
            for fut in self._calls.values():
                if not fut.done():
                    fut.set_exception(Closed("closed before the answer"))
            self._calls.clear()

    def send_call(self, method: str, params: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a call; the future gets the answer frame (result or error), or Closed."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.done.is_set():
            fut.set_exception(Closed("connection closed"))
            return fut
        request_id = next(self._ids)
        self._calls[request_id] = fut
        self.ws.write(wire.call(request_id, method, params))
        return fut

    async def call(self, method: str, params: dict[str, Any],
                   timeout: float | None = None) -> Any:
        """The result's value; CallFailed for an error answer, Closed if the link went,
        TimeoutError if no answer came within ``timeout``."""
        frame = await asyncio.wait_for(self.send_call(method, params), timeout)
        if frame.get("t") == "error":
            raise _failure(frame)
        return frame.get("value")

    def close(self) -> None:
        self.ws.abort()
        self._reader.cancel()


def _failure(frame: dict[str, Any]) -> CallFailed:
    return CallFailed(str(frame.get("code")), str(frame.get("message", "")),
                      frame.get("retry_after"))
