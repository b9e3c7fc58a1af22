"""The going-away notice on the wire and in the SDK (issue 13): ``retry_spread`` travels on
the error frame, older readers ignore it, and each SDK client picks its own moment in it."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.client import Client
from pigeon.client.link import ServerUnreachable
from pigeon.client.profile import Profile
from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.errors import PigeonError, Unavailable
from pigeon.protocol.frames import ClientProtocol, ErrorReceived, ServerProtocol
from pigeon.protocol.types import User
from pigeon.testing import StandInServer

seconds = st.floats(min_value=0, max_value=limits.MAX_RETRY_SECONDS, allow_nan=False)


@given(after=seconds, spread=seconds)
def test_retry_spread_travels_on_the_error_frame(after: float, spread: float) -> None:
    frame = ServerProtocol.error(None, Unavailable("restarting", code="SHUTTING_DOWN",
                                                   retry_after=after, retry_spread=spread))
    event = ClientProtocol().receive(frame)
    assert isinstance(event, ErrorReceived) and event.id is None
    assert (event.error.code, event.error.retry_after, event.error.retry_spread) == (
        "SHUTTING_DOWN", after, spread)


class _OlderError(msgspec.Struct, tag="error", tag_field="t"):
    """The error frame as readers before the notice knew it."""

    code: str
    id: int | None = None
    message: str = ""
    retry_after: float | None = None


def test_an_older_reader_ignores_the_spread() -> None:
    frame = ServerProtocol.error(None, Unavailable("x", code="SHUTTING_DOWN", retry_after=2.0,
                                                   retry_spread=20.0))
    old = msgspec.msgpack.decode(frame, type=_OlderError)
    assert (old.code, old.retry_after) == ("SHUTTING_DOWN", 2.0)


@pytest.mark.parametrize("spread", [-1.0, limits.MAX_RETRY_SECONDS + 1])
def test_a_spread_out_of_bounds_is_a_protocol_error(spread: float) -> None:
    frame = msgspec.msgpack.encode({"t": "error", "code": "SHUTTING_DOWN",
                                    "retry_spread": spread})
    with pytest.raises(PigeonError):
        ClientProtocol().receive(frame)


async def _all_dropped(clients: list[Client]) -> None:
    while any(client.connected for client in clients):
        await asyncio.sleep(0.01)


async def test_each_client_picks_its_own_moment_in_the_window() -> None:
    stand_in = StandInServer()
    clients = [await Client("ws://stand-in", Profile(), transport=stand_in.transport).connect()
               for _ in range(20)]
    try:
        await stand_in.send(ServerProtocol.error(None, Unavailable(
            "restarting", code="SHUTTING_DOWN", retry_after=100.0, retry_spread=50.0)))
        await stand_in.drop()
        await asyncio.wait_for(_all_dropped(clients), 10)
        waits = [client.reconnect_wait for client in clients]
        assert all(90.0 < w <= 150.0 for w in waits)
        # Spread, not one wave: 20 uniform picks in 50 s all within 1 s of each other has
        # a probability of about 20 * (1/50)^19.
        assert max(waits) - min(waits) > 1.0
        assert all(c.reconnects == 0 for c in clients)
    finally:
        for client in clients:
            await client.close()


async def test_a_device_with_a_call_waiting_comes_back_at_the_window_start() -> None:
    """The people chatting are served first: a client whose app waits on a call reconnects
    when the window opens; an idle one keeps its own pick, here far in the window."""
    me = User(id=7, name="Ada")
    stand_in = StandInServer(lambda method, params: [me], user=me)
    busy, idle = [await Client("ws://stand-in", Profile(), transport=stand_in.transport,
                               max_backoff=0.05).connect() for _ in range(2)]
    try:
        await stand_in.send(ServerProtocol.error(None, Unavailable(
            "restarting", code="SHUTTING_DOWN", retry_after=0.0, retry_spread=1000.0)))
        await stand_in.drop()
        await asyncio.wait_for(_all_dropped([busy, idle]), 10)
        answer = await asyncio.wait_for(busy.call("users.get", m.GetUsers(ids=[7])), 10)
        assert answer == [me] and busy.reconnects == 1
        # The idle one has not come back, and will not for a while yet (its pick: at most
        # 1 in 10,000 lands within the first 0.1 s of 1,000).
        assert idle.reconnects == 0 and not idle.connected and idle.reconnect_wait > 0.1
    finally:
        await busy.close()
        await idle.close()


async def test_a_waiting_call_caps_the_backoff_through_a_downtime() -> None:
    """After ten refused reconnects the backoff would reach 0.2 s x 2^10 (capped at
    max_backoff, here 1,000 s); a client whose app waits on a call keeps within
    ``waiting_backoff`` instead, so it is back soon after the server."""
    me = User(id=7, name="Ada")
    stand_in = StandInServer(lambda method, params: [me], user=me)
    refusals = 0

    async def transport(url: str):  # type: ignore[no-untyped-def]
        nonlocal refusals
        if refusals < 10 and len(stand_in.connections) >= 1:
            refusals += 1
            raise ServerUnreachable("nothing listens (a restart)")
        return await stand_in.transport(url)

    client = await Client("ws://stand-in", Profile(), transport=transport,
                          max_backoff=1000.0).connect()
    client.waiting_backoff = 0.05
    try:
        await stand_in.drop()
        answer = await asyncio.wait_for(client.call("users.get", m.GetUsers(ids=[7])), 10)
        assert answer == [me] and refusals == 10 and client.reconnects == 1
    finally:
        await client.close()
