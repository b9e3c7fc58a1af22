"""The "server never holds plaintext" harness (issue 9): everything the server could have
kept or seen, searched for a marker and for key material.

- :class:`RecordingProxy` sits between the SDK clients and the real server process and
  records every WebSocket message in both directions, after unmasking and decompression:
  what the server received and what it relayed.
- :func:`scan` searches the server's data directory (the database with its ``-wal`` and
  ``-shm``), the server's log, the recorded frames and any profile directories for each
  needle, as raw bytes and in the encodings a key or text could be written in (base64,
  URL-safe base64, hex, UTF-16).

Extending it to 1:1 secret chats and groups: connect the clients through ``proxy.url``, hold
the conversation with a fresh :func:`marker`, pass the marker and whatever key material the
test can get at (a Megolm session key export, the vault's pickle key, the passphrase) as
needles, and assert ``scan(...) == []``. A control needle sent in the clear (a plain
message) must be found, so that a scan that finds nothing is known to look in the right
places.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import aiohttp
import pytest
from aiohttp import web

from pigeon.testing import ServerProcess


def marker() -> bytes:
    return f"MARKER-{secrets.token_hex(12)}".encode()


def encodings(needle: bytes) -> dict[str, bytes]:
    """The forms ``needle`` could be stored or sent in."""
    b64 = base64.b64encode(needle)
    urlsafe = base64.urlsafe_b64encode(needle)
    forms = {"raw": needle, "base64": b64.rstrip(b"="), "base64url": urlsafe.rstrip(b"="),
             "hex": needle.hex().encode(), "HEX": needle.hex().upper().encode()}
    try:
        forms["utf-16"] = needle.decode("utf-8").encode("utf-16-le")
    except UnicodeDecodeError:
        pass
    if len(needle) < 8:
        raise ValueError("a needle this short would be found by chance")
    return forms


@dataclass
class WebSocketRelay:
    """A WebSocket relay on loopback in front of ``upstream`` (the server's URL): ``url`` is
    what clients connect to; subclasses say what ``_relay`` does with each connection."""

    upstream: str
    # keyword-only: a subclass's own fields come right after ``upstream``, by position
    url: str = field(default="", kw_only=True)
    _runner: web.AppRunner | None = field(default=None, kw_only=True)
    _session: aiohttp.ClientSession | None = field(default=None, kw_only=True)

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/ws", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        raise NotImplementedError


@dataclass
class RecordingProxy(WebSocketRelay):
    """A relay that keeps every frame it passes on."""

    frames: list[tuple[str, bytes]] = field(default_factory=list)  # ("up"|"down", payload)

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        async with self._session.ws_connect(f"{self.upstream}/v1/ws", max_msg_size=0) as server:
            async def pump(source, sink, direction: str) -> None:  # type: ignore[no-untyped-def]
                async for msg in source:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        self.frames.append((direction, msg.data))
                        await sink.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        self.frames.append((direction, msg.data.encode()))
                        await sink.send_str(msg.data)
                    else:
                        break
                await sink.close()

            up = asyncio.create_task(pump(client, server, "up"))
            down = asyncio.create_task(pump(server, client, "down"))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
        return client


def scan(needles: dict[str, bytes], *, server: ServerProcess,
         proxy: RecordingProxy | None = None,
         profiles: list[Path] | None = None) -> list[str]:
    """Where each needle was found, in any of its encodings: ``"<name> (<form>) in <where>"``;
    empty when nowhere."""
    places: list[tuple[str, bytes]] = []
    files = [p for p in server.data.rglob("*") if p.is_file()]
    places += [(f"server file {p.name}", p.read_bytes()) for p in files]
    places.append(("server log", "".join(server.log).encode()))
    if proxy is not None:
        places += [(f"frame {i} {d}", data) for i, (d, data) in enumerate(proxy.frames)]
    for profile in profiles or []:
        places += [(f"profile file {p.relative_to(profile)}", p.read_bytes())
                   for p in profile.rglob("*") if p.is_file()]
    found = []
    for name, needle in needles.items():
        for form, encoded in encodings(needle).items():
            found += [f"{name} ({form}) in {where}" for where, data in places if encoded in data]
    return found


def scanned_places(server: ServerProcess) -> list[str]:
    """The server's files the scan reads (to assert that the WAL is among them)."""
    return sorted(p.name for p in server.data.rglob("*") if p.is_file())


@dataclass
class Relayed:
    """What :func:`pigeon.testing.login` needs of a server, with ``url`` the relay's: the SDK
    clients logged in through it have every frame pass the relay (recorded, or broken on
    purpose)."""

    server: ServerProcess
    relay: WebSocketRelay

    @property
    def url(self) -> str:
        return self.relay.url

    def code_for(self, phone: str, timeout: float = 10.0) -> str:
        return str(self.server.code_for(phone, timeout))


@pytest.fixture
async def proxied(server):  # type: ignore[no-untyped-def]
    """The ``server`` fixture behind a :class:`RecordingProxy` (a fixture of every
    integration test, through conftest.py); log clients in with ``login(proxied, ...)``."""
    proxy = await RecordingProxy(server.url).start()
    try:
        yield Relayed(server, proxy)
    finally:
        await proxy.close()
