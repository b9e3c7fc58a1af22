"""Hand-driven WebSockets for integration tests: :class:`Raw` builds frames with msgspec and
matches answers to calls by id, so a test can run several calls at once on one connection;
:class:`BareWS` sends one frame at a time from a chosen loopback address (the shield's tests)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import msgspec

from pigeon.testing import ServerProcess

_ids = itertools.count(1)


def enc(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def hello_frame(token: str | None = None) -> bytes:
    frame: dict[str, Any] = {"t": "hello", "versions": [1]}
    if token is not None:
        frame["token"] = token
    return enc(frame)


def call_frame(method: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
    rid = next(_ids)
    return rid, enc({"t": "call", "id": rid, "method": method, "params": params or {}})


class Raw:
    """One WebSocket. Connection-level errors and the close are kept in ``fatal``/``closed``."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http, self.ws = http, ws
        self.welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.fatal: dict[str, Any] | None = None  # the error frame without an id, if any
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess, address: str | None = None) -> Raw:
        """A WebSocket to ``server``, from loopback ``address`` if given."""
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            local_addr=(address, 0) if address else None))
        try:
            ws = await http.ws_connect(f"ws://127.0.0.1:{server.port}/v1/ws", max_msg_size=0)
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                frame = msgspec.msgpack.decode(msg.data)
                kind = frame.get("t")
                if kind == "welcome" and not self.welcome.done():
                    self.welcome.set_result(frame)
                elif kind in ("result", "error") and frame.get("id") is not None:
                    fut = self.answers.pop(frame["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
                elif kind == "error":
                    self.fatal = frame
                    if not self.welcome.done():
                        self.welcome.set_result(frame)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed.set()
            gone = {"t": "closed", "code": self.fatal["code"] if self.fatal else None}
            if not self.welcome.done():
                self.welcome.set_result(gone)
            for fut in self.answers.values():
                if not fut.done():
                    fut.set_result(gone)

    async def hello(self, token: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """The answer to hello: the welcome, an error frame, or ``{"t": "closed"}``."""
        await self.ws.send_bytes(hello_frame(token))
        return await asyncio.wait_for(asyncio.shield(self.welcome), timeout)

    async def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """The answer to one call: a result or error frame, or ``{"t": "closed"}``."""
        if self.closed.is_set():
            return {"t": "closed", "code": self.fatal["code"] if self.fatal else None}
        rid, frame = call_frame(method, params)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers[rid] = fut
        try:
            await self.ws.send_bytes(frame)
        except (aiohttp.ClientError, ConnectionError):
            self.answers.pop(rid, None)
            return {"t": "closed", "code": None}
        return await asyncio.wait_for(fut, timeout)

    async def ok(self, method: str, **params: Any) -> Any:
        answer = await self.call(method, **params)
        assert answer["t"] == "result", answer
        return answer["value"]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await self.http.close()


async def sign_in(server: ServerProcess, phone: str, name: str = "Tester",
                  device: str = "raw") -> tuple[Raw, dict[str, Any]]:
    """A fresh connection signed in as ``phone``; returns it and the Authorization."""
    raw = await Raw.open(server)
    assert (await raw.hello())["t"] == "welcome"
    sent = await raw.ok("auth.send_code", phone=phone, sms=True)
    code = await asyncio.to_thread(server.code_for, phone)
    auth = await raw.ok("auth.sign_in", phone=phone, code_id=sent["code_id"], code=code,
                        name=name, device=device)
    return raw, auth


class BareWS:
    """A bare WebSocket from a chosen loopback address: one frame out, one answer back."""

    def __init__(self, server: ServerProcess, address: str = "127.0.0.1") -> None:
        self.server, self.address = server, address

    async def __aenter__(self) -> BareWS:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(self.address, 0)))
        try:
            self.ws = await self.http.ws_connect(f"{self.server.url}/v1/ws")
        except BaseException:
            await self.http.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()

    async def ask(self, frame: bytes) -> dict[str, Any] | None:
        """The answer to a frame, or None if the server closed the connection instead."""
        try:
            await self.ws.send_bytes(frame)
        except ConnectionError:
            return None
        msg = await self.ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return None
        answer: dict[str, Any] = msgspec.msgpack.decode(msg.data)
        return answer


def shielded(tmp_path: Any, **env: Any) -> ServerProcess:
    """A server with these shield settings (``pow_min_bits=10`` → ``PIGEON_POW_MIN_BITS``)."""
    return ServerProcess(tmp_path / "data", env={f"PIGEON_{k.upper()}": str(v)
                                                 for k, v in env.items()})
