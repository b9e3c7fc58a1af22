"""Issue 7, finding 3, the SDK's side: a server frame the SDK refuses (too big, or not
decodable) fails the call with a typed error instead of a reconnect and the same call again,
for ever; ``pigeon receive`` and ``pigeon history`` exit 1 with one line.

The server here is a stand-in on loopback that answers every call with such a frame (an old
or broken server): Pigeon's own never sends one (test_frame_limit.py).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import WSMsgType, web

from pigeon.client import Client, Profile
from pigeon.protocol import limits
from pigeon.protocol.errors import ProtocolError
from pigeon.protocol.frames import Welcome, encode
from pigeon.protocol.types import State, User

BAD_FRAMES = {
    "too_big": b"\x00" * (4 * limits.MAX_FRAME_BYTES + 10),
    "undecodable": b"\xc1\xc1\xc1",
}


@pytest.fixture(params=sorted(BAD_FRAMES))
async def bad_server(request) -> AsyncIterator[tuple[str, str, list[int]]]:
    """(url, the code the SDK should raise, how many calls it was asked)."""
    calls: list[int] = []

    async def ws(req: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(req)
        async for msg in sock:
            if msg.type != WSMsgType.BINARY:
                break
            if msgspec.msgpack.decode(msg.data)["t"] == "hello":
                await sock.send_bytes(encode(Welcome(
                    version=1, server="stand-in", user=User(id=1, name="me"), session_id=1,
                    state=State(pts=5, date=0.0))))
            else:
                calls.append(1)
                await sock.send_bytes(BAD_FRAMES[request.param])
        return sock

    app = web.Application()
    app.router.add_get("/v1/ws", ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - port 0 was asked for
    code = "FRAME_TOO_LARGE" if request.param == "too_big" else "MALFORMED_FRAME"
    try:
        yield f"http://127.0.0.1:{port}", code, calls
    finally:
        await runner.cleanup()


async def test_a_refused_frame_fails_the_call_instead_of_looping(bad_server, tmp_path):
    url, code, calls = bad_server
    client = Client(url, Profile(directory=tmp_path / "p", token="pgn_" + "x" * 43, pts=5))
    await client.connect()
    try:
        with pytest.raises(ProtocolError) as err:
            await asyncio.wait_for(client.messages.history(1), 20)
        assert err.value.code == code
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(client.sync(), 20)
        assert len(calls) <= 4  # each call asked once, plus at most a sync at reconnect
    finally:
        await client.close()


@pytest.mark.parametrize("verb", [["receive"], ["history", "chat:1"]])
async def test_the_cli_exits_with_one_line_instead_of_hanging(bad_server, tmp_path, verb):
    url, code, _ = bad_server
    profile = tmp_path / "cli"
    Profile(directory=profile, server=url, token="pgn_" + "x" * 43, user_id=1, pts=0).save()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", "--profile", str(profile), *verb,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"[{code}]" in lines[0]
