"""Testing tools that ship with Pigeon: a real server process on a free port, and helpers
to bring up logged-in SDK clients against it; and, for tests of an application's use of the
SDK, a stand-in server in memory (:class:`StandInServer`, :func:`memory_transport_pair`).
Used by Pigeon's own tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from pigeon.client import Client, Profile
from pigeon.protocol.errors import PigeonError, UnknownMethod
from pigeon.protocol.frames import (
    CallReceived,
    CallRejected,
    HelloReceived,
    Items,
    ServerProtocol,
    Violation,
    encode,
)
from pigeon.protocol.streams import Item
from pigeon.protocol.types import State, User

_LISTENING = re.compile(r"listening on (wss?)://([^ ]+):(\d+)/v1/ws")
_OPERATOR = re.compile(r"operator endpoints on (https?)://([^ ]+):(\d+) ")
# The console code sender's line (server/codes.py); tests and `pigeon siege` read codes from it.
CODE_LINE = re.compile(r"login code for (\+\d+): (\d+)")


# Every test client comes from 127.0.0.1, so limits per address and per prefix would make
# one address look like an attacker. Tests of those limits (and `pigeon siege`) pass their own.
LOOPBACK_LIMITS = {
    "PIGEON_CODE_RATE_ADDRESS": "100000/1s burst 100000",
    "PIGEON_CODE_RATE_COUNTRY": "100000/1s burst 100000",
    "PIGEON_CODE_RATE_GLOBAL": "100000/1s burst 100000",
    "PIGEON_RATE_ADDRESS": "100000/1s burst 100000",
    "PIGEON_RATE_PREFIX": "100000/1s burst 100000",
    "PIGEON_MAX_PER_ADDRESS": "100000",
    "PIGEON_MAX_PER_PREFIX": "100000",
    # and tests that pump messages are not spammers
    "PIGEON_RATE_SEND": "100000/1s burst 100000",
    "PIGEON_RATE_SESSION": "100000/1s burst 100000",
    "PIGEON_RATE_ACCOUNT": "100000/1s burst 100000",
    "PIGEON_FRAME_RATE_UNAUTHENTICATED": "100000/1s burst 100000",
    "PIGEON_ACCEPT_RATE_UNKNOWN": "100000/1s burst 100000",
    "PIGEON_HTTP_RATE": "100000/1s burst 100000",
    "PIGEON_RATE_FANOUT": "1000000/1s burst 1000000",
    # and tests that page quickly through lists are not a herd catching up (the cap's own
    # tests, tests/integration/test_resumption.py, set one)
    "PIGEON_BULK_RATE_CONNECTION": "100000/1s burst 100000",
    # Tests put people in groups by user id without their asking first; the tests of consent
    # (tests/integration/test_groups_consent.py) set the real default, "contacts", back.
    "PIGEON_DEFAULT_WHO_CAN_ADD": "everyone",
    # Likewise strangers write to each other in most tests; the tests of message requests
    # (tests/integration/test_safety.py) set the real default, "contacts", back.
    "PIGEON_DEFAULT_WHO_CAN_MESSAGE": "everyone",
}


class ServerProcess:
    """``pigeon serve`` as a child process, on port 0, reading its stderr as it goes. Its
    operator listener (/metrics, /shield) is on another free loopback port: ``operator_url``."""

    def __init__(self, data: Path, *extra_args: str, env: dict[str, str] | None = None,
                 module: str = "pigeon") -> None:
        self.data = data
        self.extra_args = extra_args
        self.env = env
        # what runs `serve`: pigeon itself, or a wrapper that first teaches the server
        # test-only shapes (pigeon.testing_shapes.MODULE)
        self.module = module
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.operator_port = 0
        self.log: list[str] = []
        self._codes: dict[str, str] = {}
        self._cond = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def operator_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        listen = f"127.0.0.1:{self.port}"  # port 0 the first time; the same port on restart
        # The operator port too: port 0 at first, then the same one on restart.
        env = {**os.environ, **LOOPBACK_LIMITS,
               "PIGEON_OPERATOR_LISTEN": f"127.0.0.1:{self.operator_port}", **(self.env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "serve", "--data", str(self.data), "--listen",
             listen, *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.port or not self._listening:
                if self.proc.poll() is not None:
                    raise RuntimeError("server exited at start:\n" + "".join(self.log[-20:]))
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError("server did not start:\n" + "".join(self.log[-20:]))
        return self

    _listening = False

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self.log.append(line)
                if m := _OPERATOR.search(line):
                    self.operator_port = int(m[3])
                if m := _LISTENING.search(line):
                    self.port = int(m[3])
                    self._listening = True
                if m := CODE_LINE.search(line):
                    self._codes[m[1]] = m[2]
                self._cond.notify_all()
        proc.wait()
        with self._cond:  # wake start() at once if the server died
            self._cond.notify_all()

    def code_for(self, phone: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while phone not in self._codes:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no login code for {phone} in the server log")
            return self._codes.pop(phone)

    def kill(self) -> None:
        """kill -9: no chance to flush or close anything; with --workers, every worker too
        (the whole node dies at once, as when its machine does)."""
        assert self.proc is not None
        for child in _children(self.proc.pid):
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.proc.kill()
        self.proc.wait()
        self._listening = False

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._listening = False
        return code

    def restart(self) -> None:
        self.start()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def login(server: ServerProcess, phone: str, name: str, *, username: str | None = None,
                profile: Path | None = None, device: str = "test",
                local_address: str | None = None) -> Client:
    """A connected client, signed up (or in) as ``phone``. The code is asked for by SMS
    (read from the server's log) even when the account has other logged-in devices.
    ``local_address``: the loopback address it connects from (127.0.0.0/8)."""
    client = Client(server.url, Profile.load(profile), local_address=local_address)
    await client.connect()
    await client.auth.send_code(phone, sms=True)
    code = await _in_thread(server.code_for, phone)
    await client.auth.sign_in(code, name=name, device=device)
    if username is not None:
        await client.account.set_username(username)
    return client


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(fn, *args)


def proxy_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY protocol v1 header, as HAProxy or nginx (``proxy_protocol on``) writes it."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return (f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode())


def proxy_v2(source: tuple[str, int] | None, destination: tuple[str, int] | None = None,
             tlvs: bytes = b"") -> bytes:
    """A PROXY protocol v2 header; ``source`` None makes it a LOCAL one (a health check)."""
    import ipaddress

    from pigeon.server.proxy_header import V2_SIGNATURE

    if source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + len(tlvs).to_bytes(2, "big") + tlvs
    destination = destination or (("::1" if ":" in source[0] else "127.0.0.1"), 8700)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    block = (src.packed + dst.packed + source[1].to_bytes(2, "big")
             + destination[1].to_bytes(2, "big") + tlvs)
    return V2_SIGNATURE + bytes([0x21, family]) + len(block).to_bytes(2, "big") + block


# -- the SDK against a stand-in server, in memory ---------------------------------------------
# ``Client(transport=...)`` opens its WebSocket through a function of ours instead of aiohttp
# (the seam in client/link.py, ``Transport``). The pair below is that socket in memory, as
# trio's memory stream pairs or httpx's MockTransport: a test writes the server it needs and
# drives the SDK through its public API only, with no port and no private member.


class MemorySocket:
    """One end of an in-memory WebSocket: binary frames sent on one end arrive at the other,
    in order. Closing either end closes both; each then reads to the end of what was sent."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._state = {"closed": False}  # shared by both ends
        self.peer: MemorySocket = self

    @property
    def closed(self) -> bool:
        return self._state["closed"]

    async def send_bytes(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("the memory socket is closed")
        self.peer._inbox.put_nowait(bytes(data))

    async def receive(self) -> bytes | None:
        """The next frame, or None once the socket is closed."""
        return await self._inbox.get()

    async def close(self) -> bool:
        if not self.closed:
            self._state["closed"] = True
            self._inbox.put_nowait(None)
            self.peer._inbox.put_nowait(None)
        return True

    def __aiter__(self) -> AsyncIterator[aiohttp.WSMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[aiohttp.WSMessage]:
        # aiohttp's message shape, so the SDK reads this socket as it reads a real one
        while (data := await self.receive()) is not None:
            yield aiohttp.WSMessage(aiohttp.WSMsgType.BINARY, data, None)


def memory_transport_pair() -> tuple[MemorySocket, MemorySocket]:
    """(client end, server end) of one in-memory WebSocket."""
    client, server = MemorySocket(), MemorySocket()
    client.peer, server.peer = server, client
    server._state = client._state
    return client, server


#: answers a call: returns its result (or an awaitable of it), or raises a PigeonError
Answer = Callable[[str, Any], Any]


class StandInServer:
    """A Pigeon server written in the test, speaking the real protocol (``ServerProtocol``)
    over memory sockets. ``answer(method, params)`` answers each call; every connection is
    welcomed with ``user`` and ``state``. Connect a client with ``transport=stand_in.transport``::

        stand_in = StandInServer(answer)
        client = await Client("ws://stand-in", Profile(), transport=stand_in.transport).connect()
        await stand_in.push([update])   # pushed to every connection, as the server would
    """

    def __init__(self, answer: Answer | None = None, *, user: User | None = None,
                 state: State | None = None, name: str = "stand-in",
                 reconnect_window: float | None = None) -> None:
        self.answer = answer
        self.user, self.state, self.name = user, state, name
        self.reconnect_window = reconnect_window  # told in every welcome
        self.calls: list[tuple[str, Any]] = []  # every call received, in order
        self.connections: list[StandInConnection] = []

    async def transport(self, url: str) -> MemorySocket:
        """The ``Transport`` to give ``Client``: each connect is a new connection here."""
        client_end, server_end = memory_transport_pair()
        connection = StandInConnection(self, server_end)
        self.connections.append(connection)
        connection.task = asyncio.create_task(connection.serve())
        return client_end

    @property
    def open_connections(self) -> list[StandInConnection]:
        return [c for c in self.connections if not c.socket.closed]

    async def push(self, updates: list[Any], stream: str = "user:0") -> None:
        """Push updates of ``stream`` to every open connection, framed for its version."""
        for connection in self.open_connections:
            for frame in connection.protocol.update_frames(updates, stream):
                await connection.socket.send_bytes(frame)

    async def push_items(self, items: list[Item]) -> None:
        """Push stream items as they are (bodies of any type, known to the SDK or not)."""
        await self.send(encode(Items(items=items)))

    async def send(self, frame: bytes) -> None:
        """Send a raw frame to every open connection (broken or hostile servers)."""
        for connection in self.open_connections:
            await connection.socket.send_bytes(frame)

    async def drop(self) -> None:
        """Close every connection, as a restart or a network failure does."""
        for connection in self.connections:
            await connection.socket.close()

    async def close(self) -> None:
        await self.drop()
        for connection in self.connections:
            if connection.task is not None:
                await connection.task


class StandInConnection:
    def __init__(self, server: StandInServer, socket: MemorySocket) -> None:
        self.server, self.socket = server, socket
        self.protocol = ServerProtocol()
        self.task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        async for message in self.socket:
            event = self.protocol.receive(message.data)
            if isinstance(event, HelloReceived):
                await self.socket.send_bytes(self.protocol.welcome(
                    self.server.name, self.server.user, None, self.server.state,
                    reconnect_window=self.server.reconnect_window))
            elif isinstance(event, CallReceived):
                await self.socket.send_bytes(await self._answer(event))
            elif isinstance(event, CallRejected):
                await self.socket.send_bytes(event.reply)
            elif isinstance(event, Violation):
                await self.socket.send_bytes(event.reply)
                if event.close:
                    await self.socket.close()

    async def _answer(self, call: CallReceived) -> bytes:
        self.server.calls.append((call.method, call.params))
        try:
            if self.server.answer is None:
                raise UnknownMethod(f"the stand-in server does not answer {call.method}")
            value = self.server.answer(call.method, call.params)
            if inspect.isawaitable(value):
                value = await value
        except PigeonError as error:
            return self.protocol.error(call.id, error)
        return self.protocol.result(call.id, self.protocol.hold_back(value))


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
