"""The reconnect storm's idle devices never go missing without a word: a device whose sync
the server leaves unanswered counts it and connects again, and one that has not come back
says where it is (the storm of issue 13 once ended with devices "never back" and no failure
recorded for them)."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from pigeon.siege.devices import Devices


async def _server(answer_sync_from: int) -> tuple[TestServer, list[str]]:
    """A WebSocket that welcomes every hello and answers get_difference only from its
    ``answer_sync_from``-th connection on (0-based); the log says what each connection did."""
    log: list[str] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        connection = sum(1 for line in log if line == "connected")
        log.append("connected")
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type != WSMsgType.BINARY:
                continue
            frame = msgspec.msgpack.decode(msg.data)
            if frame.get("t") == "hello":
                await sock.send_bytes(msgspec.msgpack.encode({"t": "welcome", "v": 1}))
            elif frame.get("t") == "call" and connection >= answer_sync_from:
                log.append("answered")
                await sock.send_bytes(msgspec.msgpack.encode(
                    {"t": "result", "id": frame["id"],
                     "value": {"state": {"pts": 0}, "more": False}}))
        return sock

    app = web.Application()
    app.router.add_get("/v1/ws", ws)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, log


async def test_a_sync_never_answered_is_counted_and_the_device_connects_again() -> None:
    server, log = await _server(answer_sync_from=1)
    assert server.port is not None
    devices = Devices("127.0.0.1", server.port, [{"token": "t", "user_id": 1, "address": None}])
    devices.sync_timeout = 0.3
    running = asyncio.create_task(devices.run())
    try:
        await asyncio.wait_for(devices.all_ready.wait(), 10)
    finally:
        devices.stop.set()
        await running
        await server.close()
    assert devices.failures_before["sync unanswered"] == 1
    assert log == ["connected", "connected", "answered"]
    assert devices.phase == ["online"]


async def test_a_device_away_says_where_it_is() -> None:
    devices = Devices("127.0.0.1", 9, [{"token": "t", "user_id": 1, "address": None}] * 3)
    devices.dropped = [1.0, 1.0, None]
    devices.back = [None, 2.0, None]
    devices.phase = ["waiting", "online", "connecting"]
    assert devices.counts()["not_back_by_phase"] == {"waiting": 1}


def test_several_processes_counts_add_up_as_one():
    from pigeon.siege.storm import _added

    merged = _added([
        {"t": 5.0, "all_ready": True, "ready": 3, "failures": {"http 503": 2}},
        {"t": 7.0, "all_ready": False, "ready": 4, "failures": {"http 503": 1, "connect": 1}},
    ])
    assert merged == {"t": 7.0, "all_ready": False, "ready": 7,
                      "failures": {"http 503": 3, "connect": 1}}
