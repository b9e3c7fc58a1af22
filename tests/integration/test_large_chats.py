"""Issue 8, deliverable 2, through a real server: a very large group (kind ``supergroup``)
writes each message once, on its own stream ``chat:<id>``. Members online get its items
pushed (the bus's stream subscriptions); a member who was away catches up with
``updates.get_stream_difference``; someone who left reads nothing more; a client of
protocol version 1 sees a group and is not broken."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_grown_server import second_session, until
from v1_device import CallFailed, V1Device
from v1_device import Chat as V1Chat
from v1_device import Message as V1Message
from v1_device import State as V1State

from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound, Unauthorized
from pigeon.protocol.updates import ChatUpdate, NewMessage
from pigeon.testing import login


def texts(updates: list[Any], chat_id: int) -> list[str]:
    return [u.message.text for u in updates
            if isinstance(u, NewMessage) and u.message.chat_id == chat_id]


async def test_two_online_one_away_and_one_who_left(server, phone, tmp_path):
    alice = await login(server, phone(), "Alice")
    bob = await login(server, phone(), "Bob")
    carol = await login(server, phone(), "Carol")
    dave = await login(server, phone(), "Dave", profile=tmp_path / "dave")
    clients = [alice, bob, carol]
    try:
        for c in (bob, carol, dave):
            await c.account.set_who_can_add("everyone")
        ids = [c.profile.user_id for c in (bob, carol, dave)]
        chat = await alice.chats.create_group("Town square", ids, large=True)  # type: ignore[arg-type]
        stream = f"chat:{chat.id}"
        assert chat.kind == "supergroup" and chat.member_count == 4
        await dave.close()  # away from here on; his position stays in his profile

        await alice.messages.send(chat.id, "one")
        await alice.messages.send(chat.id, "two")
        sent = await bob.messages.send(chat.id, "three")
        assert sent.pts == 0  # nobody's own stream moved
        head = (await alice.call("updates.get_state", m.GetState())).streams[stream]
        for member in (alice, bob, carol):
            await until(lambda member=member: member.profile.streams.get(stream) == head,
                        "every online member to reach the chat stream's head")
        for member in (alice, bob, carol):
            assert texts(member.take_updates(), chat.id) == ["one", "two", "three"]
            assert member.reconnects == 0

        # Dave was away: hello tells him the head, and he reads what he missed, once.
        back = Client(None, tmp_path / "dave")
        clients.append(back)
        await back.connect()
        await asyncio.wait_for(back.sync(), 30)
        assert back.profile.streams[stream] == head
        assert texts(back.take_updates(), chat.id) == ["one", "two", "three"]

        # Carol leaves: nothing written after that reaches her, pushed or asked for.
        await carol.chats.leave(chat.id)
        await alice.messages.send(chat.id, "after carol left")
        head = (await alice.call("updates.get_state", m.GetState())).streams[stream]
        await until(lambda: back.profile.streams.get(stream) == head, "dave to get it live")
        assert texts(back.take_updates(), chat.id) == ["after carol left"]
        await asyncio.sleep(0.3)
        assert texts(carol.take_updates(), chat.id) == []
        with pytest.raises(NotFound) as refused:
            await carol.call("updates.get_stream_difference",
                             m.GetStreamDifference(stream=stream, seq=0))
        assert refused.value.code == "STREAM_NOT_FOUND"
        assert stream not in (await carol.call("updates.get_state", m.GetState())).streams
    finally:
        for c in clients:
            await c.close()


async def test_a_device_reads_only_its_own_inbox(server, phone):
    alice = await login(server, phone(), "Alice")
    bob = await login(server, phone(), "Bob")
    try:
        mine = f"device:{alice.profile.session_id}"
        page = await alice.call("updates.get_stream_difference",
                                m.GetStreamDifference(stream=mine, seq=0))
        assert page.items == [] and not page.more
        for other in (f"device:{bob.profile.session_id}", "device:999999", "nope:1"):
            with pytest.raises(NotFound) as refused:
                await alice.call("updates.get_stream_difference",
                                 m.GetStreamDifference(stream=other, seq=0))
            assert refused.value.code == "STREAM_NOT_FOUND"
            with pytest.raises(NotFound):
                await alice.call("updates.ack_stream", m.AckStream(stream=other, seq=1))
        assert (await alice.call("updates.ack_stream", m.AckStream(stream=mine, seq=5))).count == 0
        stranger = Client(server.url, Profile())  # connected, never logged in
        await stranger.connect()
        try:
            for method, params in (("updates.ack_stream", m.AckStream(stream=mine, seq=1)),
                                   ("updates.get_stream_difference",
                                    m.GetStreamDifference(stream=mine, seq=0))):
                with pytest.raises(Unauthorized) as refused:
                    await stranger.call(method, params)
                assert refused.value.code == "AUTH_REQUIRED"
        finally:
            await stranger.close()
    finally:
        await alice.close()
        await bob.close()


async def test_a_version_1_client_sees_a_group_and_stays_connected(server, phone):
    pa = phone()
    alice = await login(server, pa, "Alice")
    bob = await login(server, phone(), "Bob")
    await alice.account.set_who_can_add("everyone")
    old = await V1Device(server.url, await second_session(server, pa)).connect()
    try:
        assert old.welcome is not None and old.welcome.state is not None
        chat = await bob.chats.create_group("Big", [alice.profile.user_id], large=True)  # type: ignore[list-item]
        for i in range(3):
            await bob.messages.send(chat.id, f"m{i}")
        head = (await old.call("updates.get_state", {}, V1State)).pts
        await until(lambda: old.pts == head, "the old device to apply its own stream")
        seen = await old.call("chats.get", {"chat_id": chat.id}, V1Chat)
        assert seen.kind == "group"  # held back: version 1 knows no supergroup
        history = await old.call("messages.history", {"chat_id": chat.id}, list[V1Message])
        assert [msg.text for msg in history] == ["m2", "m1", "m0"]
        with pytest.raises(CallFailed) as refused:
            await old.call("updates.ack_stream", {"stream": "device:1", "seq": 1}, V1State)
        assert refused.value.code == "UNKNOWN_METHOD"
        await asyncio.sleep(0.3)
        assert old.connected and old.refused == []
    finally:
        await old.close()
        await alice.close()
        await bob.close()


async def test_a_new_member_follows_the_stream_from_joining(server, phone):
    alice = await login(server, phone(), "Alice")
    erin = await login(server, phone(), "Erin")
    try:
        await erin.account.set_who_can_add("everyone")
        chat = await alice.chats.create_group("Big", [], large=True)
        await alice.messages.send(chat.id, "before erin")
        await alice.chats.add_members(chat.id, [erin.profile.user_id])  # type: ignore[list-item]
        await alice.messages.send(chat.id, "after erin")
        stream = f"chat:{chat.id}"
        head = (await alice.call("updates.get_state", m.GetState())).streams[stream]
        await until(lambda: erin.profile.streams.get(stream) == head, "erin to follow it")
        got = erin.take_updates()
        assert texts(got, chat.id) == ["after erin"]
        assert any(isinstance(u, ChatUpdate) and u.chat.role == "member" for u in got)
        assert erin.reconnects == 0
    finally:
        await alice.close()
        await erin.close()
