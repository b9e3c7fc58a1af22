"""Issue 8, deliverable 1: the protocol can grow without stranding the clients out there.

Before, every union on the wire was closed: a client that met an update type or a chat kind
it did not know failed the frame (MALFORMED_FRAME), dropped the connection, reconnected, got
the same update again from get_difference, and was stuck for good. The server here is one
that grew (``pigeon.testing_shapes``): it emits an update type and a chat kind of a protocol
version newer than what this test process knows. Two kinds of client must carry on:

* one built for version 1 (``v1_device``: version 1's frozen schema and sync rule), which
  the server must never send a shape it cannot read, nor leave a hole in its pts;
* this SDK, which speaks version 2 and does not know the new shapes either: it must skip
  the update while still moving its position on, and read the chat kind as "unknown".
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest
from v1_device import Affected as V1Affected
from v1_device import CallFailed, V1Device
from v1_device import Chat as V1Chat
from v1_device import ChatUpdate as V1ChatUpdate
from v1_device import DeleteMessages as V1DeleteMessages
from v1_device import NewMessage as V1NewMessage
from v1_device import State as V1State

from pigeon import testing_shapes as shapes
from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound
from pigeon.protocol.updates import ChatUpdate, NewMessage
from pigeon.testing import ServerProcess, login


@pytest.fixture
def grown(tmp_path):
    """A server that knows shapes newer than this test process (and any client) knows."""
    with ServerProcess(tmp_path / "data", module=shapes.MODULE) as proc:
        yield proc


async def second_session(server: ServerProcess, phone: str) -> str:
    """Another device of an account: its session token."""
    client = Client(server.url, Profile())
    await client.connect()
    try:
        await client.auth.send_code(phone, sms=True)
        await client.auth.sign_in(await asyncio.to_thread(server.code_for, phone),
                                  device="old phone")
        assert client.profile.token is not None
        return client.profile.token
    finally:
        await client.close()


async def emit(server: ServerProcess, token: str, method: str, note: str = "") -> Any:
    """Make the grown server log a new shape in the account's stream (a raw version-2 call,
    since no SDK knows the test-only methods)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            server.url.replace("http://", "ws://") + "/v1/ws") as ws:
        await ws.send_bytes(msgspec.msgpack.encode({"t": "hello", "versions": [2],
                                                    "token": token}))
        await ws.send_bytes(msgspec.msgpack.encode(
            {"t": "call", "id": 1, "method": method, "params": {"note": note}}))
        while True:
            frame = msgspec.msgpack.decode((await ws.receive(timeout=10)).data)
            if frame["t"] == "result":
                return frame["value"]
            assert frame["t"] in ("welcome", "items"), frame


async def until(condition, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def check_v1_stream(device: V1Device, start: int, head: int, texts: list[str]) -> None:
    """Connected, nothing refused, every pts from ``start`` + 1 to ``head`` once and in
    order, the messages all there, and the new shapes held back to version 1's."""
    assert device.refused == []
    assert [u.pts for u in device.applied] == list(range(start + 1, head + 1))
    assert [u.message.text for u in device.applied if isinstance(u, V1NewMessage)] == texts
    placeholders = [u for u in device.applied if isinstance(u, V1DeleteMessages)]
    assert placeholders and all(u.message_ids == [] for u in placeholders)
    chats = [u for u in device.applied if isinstance(u, V1ChatUpdate)
             and u.chat.id == shapes.CHANNEL_ID]
    assert chats and all(u.chat.kind == "group" for u in chats)


async def test_a_version_1_client_stays_connected_synced_and_gap_free(grown, phone):
    pa = phone()
    alice = await login(grown, pa, "Alice")
    bob = await login(grown, phone(), "Bob")
    old_token = await second_session(grown, pa)
    old = await V1Device(grown.url, old_token).connect()
    try:
        assert old.welcome is not None and old.welcome.state is not None
        start = old.pts = old.welcome.state.pts
        chat = await bob.chats.open_private(alice.profile.user_id)  # type: ignore[arg-type]
        # Live: the new shapes reach the old device among ordinary updates.
        await bob.messages.send(chat.id, "one")
        poked = await old.call(shapes.EMIT_UPDATE, {"note": "from the future"}, V1Affected)
        await bob.messages.send(chat.id, "two")
        channel = await old.call(shapes.EMIT_CHAT, {"note": "news"}, V1Chat)
        assert channel.kind == "group"  # a result is held back too
        await bob.messages.send(chat.id, "three")
        head = (await old.call("updates.get_state", {}, V1State)).pts
        assert head >= poked.pts > start
        await until(lambda: old.pts == head, "the old device to reach the head")
        assert old.connected
        check_v1_stream(old, start, head, ["one", "two", "three"])
        # A method of version 2 does not exist for it.
        with pytest.raises(CallFailed) as refused:
            await old.call("updates.get_stream_difference", {"stream": "user:1", "seq": 0},
                           V1State)
        assert refused.value.code == "UNKNOWN_METHOD"
        assert old.connected

        # Away: it catches up through get_difference, which holds back the same way.
        await old.close()
        away_from = old.pts
        await bob.messages.send(chat.id, "four")
        await emit(grown, old_token, shapes.EMIT_UPDATE)
        await emit(grown, old_token, shapes.EMIT_CHAT)
        await bob.messages.send(chat.id, "five")
        back = await V1Device(grown.url, old_token, pts=away_from).connect()
        try:
            assert back.welcome is not None and back.welcome.state is not None
            head = back.welcome.state.pts
            await back.sync()
            assert back.pts == head and back.connected
            check_v1_stream(back, away_from, head, ["four", "five"])
        finally:
            await back.close()
    finally:
        await alice.close()
        await bob.close()


async def test_this_sdk_skips_an_update_it_does_not_know_and_moves_on(grown, phone, tmp_path):
    pa = phone()
    alice = await login(grown, pa, "Alice")
    bob = await login(grown, phone(), "Bob")
    away = Client(grown.url, Profile.load(tmp_path / "away"))
    await away.connect()
    await away.auth.send_code(pa, sms=True)
    await away.auth.sign_in(await asyncio.to_thread(grown.code_for, pa), device="away")
    await away.close()  # its position stays here: it must catch up through the new shapes
    assert alice.profile.token is not None
    try:
        assert alice.version == 2
        chat = await bob.chats.open_private(alice.profile.user_id)  # type: ignore[arg-type]
        start = alice.profile.pts
        seen: list[Any] = []

        async def collect() -> None:
            async for update in alice.updates():
                seen.append(update)

        reader = asyncio.create_task(collect())
        await bob.messages.send(chat.id, "one")
        poked = await emit(grown, alice.profile.token, shapes.EMIT_UPDATE, "poke")
        await bob.messages.send(chat.id, "two")
        await emit(grown, alice.profile.token, shapes.EMIT_CHAT, "news")
        await bob.messages.send(chat.id, "three")
        head = (await alice.call("updates.get_state", m.GetState())).pts
        await until(lambda: alice.profile.pts == head, "the SDK to reach the head")
        reader.cancel()
        texts = [u.message.text for u in seen if isinstance(u, NewMessage)]
        assert texts == ["one", "two", "three"]
        assert alice.skipped_updates == 1  # the poke: skipped, its position counted
        channels = [u.chat for u in seen if isinstance(u, ChatUpdate)
                    and u.chat.id == shapes.CHANNEL_ID]
        assert [c.kind for c in channels] == ["unknown"]
        # Every position from start to head was delivered or skipped, once, in order.
        assert [u.pts for u in seen] == [p for p in range(start + 1, head + 1)
                                         if p != poked["pts"]]
        assert alice.reconnects == 0

        # A device that was away fetches the same through get_stream_difference.
        back = Client(None, tmp_path / "away")
        await back.connect()
        try:
            await asyncio.wait_for(back.sync(), 30)
            assert back.profile.pts == head
            caught_up = back.take_updates()
            assert [u.message.text for u in caught_up if isinstance(u, NewMessage)] == [
                "one", "two", "three"]
            assert back.skipped_updates == 1
            assert [u.chat.kind for u in caught_up if isinstance(u, ChatUpdate)
                    and u.chat.id == shapes.CHANNEL_ID] == ["unknown"]
        finally:
            await back.close()
    finally:
        await alice.close()
        await bob.close()


async def test_this_sdk_speaking_only_version_1_gets_version_1(grown, phone):
    """What this SDK does with a server that speaks only version 1: the same sync, by pts."""
    pa = phone()
    alice = await login(grown, pa, "Alice")
    bob = await login(grown, phone(), "Bob")
    token = await second_session(grown, pa)
    profile = Profile(token=token, user_id=alice.profile.user_id, pts=alice.profile.pts)
    old = Client(grown.url, profile, versions=(1,))
    await old.connect()
    try:
        assert old.version == 1
        chat = await bob.chats.open_private(alice.profile.user_id)  # type: ignore[arg-type]
        start = old.profile.pts
        await bob.messages.send(chat.id, "one")
        await emit(grown, token, shapes.EMIT_UPDATE)
        await emit(grown, token, shapes.EMIT_CHAT)
        await bob.messages.send(chat.id, "two")
        head = (await old.call("updates.get_state", m.GetState())).pts
        await until(lambda: old.profile.pts == head, "the SDK to reach the head")
        got = old.take_updates()
        assert [u.pts for u in got] == list(range(start + 1, head + 1))
        assert old.skipped_updates == 0  # version 1 gets placeholders, not unknown types
        assert [u.chat.kind for u in got if isinstance(u, ChatUpdate)] == ["group"]
        assert [u.message.text for u in got if isinstance(u, NewMessage)] == ["one", "two"]
    finally:
        await old.close()
        await alice.close()
        await bob.close()


async def test_only_your_own_stream_can_be_read(server, phone):
    alice = await login(server, phone(), "Alice")
    bob = await login(server, phone(), "Bob")
    try:
        # (Alice's own device inbox, device:<her session id>, is hers to read.)
        for stream in (f"user:{bob.profile.user_id}", "user:999999", "chat:1",
                       f"device:{bob.profile.session_id}"):
            with pytest.raises(NotFound) as refused:
                await alice.call("updates.get_stream_difference",
                                 m.GetStreamDifference(stream=stream, seq=0))
            assert refused.value.code == "STREAM_NOT_FOUND"
            assert "follow" in refused.value.message
        own = await alice.call("updates.get_stream_difference", m.GetStreamDifference(
            stream=f"user:{alice.profile.user_id}", seq=0))
        assert own.stream == f"user:{alice.profile.user_id}" and not own.more
    finally:
        await alice.close()
        await bob.close()
