"""Two people, several devices each, against a real server process."""

import asyncio

import pytest

from pigeon.client import Client, Profile
from pigeon.protocol.errors import Forbidden, Unauthorized
from pigeon.protocol.updates import (
    ChatUpdate,
    DeleteMessages,
    EditMessage,
    NewMessage,
    ReadOutbox,
    Typing,
)
from pigeon.testing import login


async def next_of(client: Client, kind, timeout: float = 5.0, where=lambda u: True):
    async def wait():
        async for update in client.updates():
            if isinstance(update, kind) and where(update):
                return update
    return await asyncio.wait_for(wait(), timeout)


async def second_device(server, phone, profile=None) -> Client:
    client = Client(server.url, Profile.load(profile))
    await client.connect()
    await client.auth.send_code(phone, sms=True)  # from the server's log, not in the app
    code = await asyncio.to_thread(server.code_for, phone)
    await client.auth.sign_in(code, device="second")
    return client


async def test_private_chat_across_devices(shared_server, phone):
    pa, pb = phone(), phone()
    alice = await login(shared_server, pa, "Alice", username="alice_dev")
    bob = await login(shared_server, pb, "Bob", username="Bob_Dev")
    alice2 = await second_device(shared_server, pa)
    try:
        found = await alice.account.resolve_username("@bob_dev")  # any case finds them
        assert found.name == "Bob" and found.phone is None  # phones are private by default
        chat = await alice.chats.open_private(found.id)
        sent = await alice.messages.send(chat.id, "hello bob")
        assert sent.message.id == 1
        got = await next_of(bob, NewMessage)
        assert (got.message.text, got.message.sender_id) == ("hello bob", alice.profile.user_id)
        mirrored = await next_of(alice2, NewMessage)  # the sender's other device sees it too
        assert mirrored.message.id == 1
        reply = await bob.messages.send(chat.id, "hi alice", reply_to=1)
        assert reply.message.id == 2 and reply.message.reply_to == 1
        from_bob = lambda u: u.message.sender_id == bob.profile.user_id  # noqa: E731
        for device in (alice, alice2):
            assert (await next_of(device, NewMessage, where=from_bob)).message.text == "hi alice"
        # Replying reads what came before: Alice learns that Bob has read her message.
        assert (await next_of(alice, ReadOutbox)).max_id == 1
        assert (await bob.messages.read(chat.id, 2)).unread_count == 0
        dialogs = await alice.chats.list()
        assert dialogs[0].chat.id == chat.id and dialogs[0].unread_count == 1
        await alice.messages.edit(chat.id, 1, "hello bob!")
        assert (await next_of(bob, EditMessage)).message.text == "hello bob!"
        with pytest.raises(Forbidden) as err:
            await alice.messages.edit(chat.id, 2, "not mine")
        assert err.value.code == "NOT_AUTHOR"
        await alice.messages.typing(chat.id)
        assert (await next_of(bob, Typing)).user_id == alice.profile.user_id
        await alice.messages.delete(chat.id, [1], for_everyone=True)
        assert (await next_of(bob, DeleteMessages)).message_ids == [1]
        assert [m.id for m in await bob.messages.history(chat.id)] == [2]
        fwd = await bob.messages.forward(chat.id, 2, chat.id)
        assert fwd.message.fwd_from.message_id == 2
    finally:
        for c in (alice, bob, alice2):
            await c.close()


async def test_group_roles_and_membership(shared_server, phone):
    owner = await login(shared_server, phone(), "Owner", username="grp_owner")
    m1 = await login(shared_server, phone(), "Member One")
    m2 = await login(shared_server, phone(), "Member Two")
    try:
        group = await owner.chats.create_group("Newsroom", [m1.profile.user_id])
        assert group.member_count == 2 and group.role == "owner"
        assert (await next_of(m1, ChatUpdate)).chat.title == "Newsroom"
        await owner.messages.send(group.id, "before m2 joined")
        with pytest.raises(Forbidden) as err:
            await m1.chats.add_members(group.id, [m2.profile.user_id])
        assert err.value.code == "NOT_ADMIN"
        await owner.chats.add_members(group.id, [m2.profile.user_id])
        assert await m2.messages.history(group.id) == []  # newcomers don't see the past
        await m1.messages.send(group.id, "hi all")
        assert (await next_of(m2, NewMessage)).message.text == "hi all"
        await owner.chats.remove_member(group.id, m1.profile.user_id)
        removed = await next_of(m1, ChatUpdate)
        while removed.chat.role is not None:
            removed = await next_of(m1, ChatUpdate)
        with pytest.raises(Forbidden) as err:
            await m1.messages.send(group.id, "still here?")
        assert err.value.code == "NOT_A_MEMBER"
        await owner.chats.leave(group.id)
        assert (await m2.chats.get(group.id)).role == "owner"  # ownership passed on
    finally:
        for c in (owner, m1, m2):
            await c.close()


async def test_device_that_was_away_gets_exactly_what_it_missed(shared_server, phone, tmp_path):
    pa = phone()
    alice = await login(shared_server, pa, "Alice")
    bob = await login(shared_server, phone(), "Bob")
    away = await second_device(shared_server, pa, profile=tmp_path / "away")
    chat = await bob.chats.open_private(alice.profile.user_id)
    await away.close()  # saves its pts to the profile
    try:
        for i in range(30):
            await bob.messages.send(chat.id, f"m{i}")
        back = Client(None, tmp_path / "away")
        await back.connect()
        try:
            await back.sync()
            seen = []
            while back.pending_updates():
                seen.append(await next_of(back, NewMessage))
            assert [u.message.text for u in seen] == [f"m{i}" for i in range(30)]
            pts = [u.pts for u in seen]
            assert pts == list(range(pts[0], pts[0] + 30))  # no gap, no duplicate
        finally:
            await back.close()
    finally:
        await alice.close()
        await bob.close()


async def test_terminated_session_is_cut_off_at_once(shared_server, phone, tmp_path):
    pa = phone()
    main = await login(shared_server, pa, "Main")
    other = await second_device(shared_server, pa, profile=tmp_path / "other")
    try:
        sessions = await main.sessions.list()
        assert len(sessions) == 2 and sum(s.current for s in sessions) == 1
        victim = next(s for s in sessions if not s.current)
        await main.sessions.terminate(victim.id)
        with pytest.raises(Unauthorized) as err:
            for _ in range(50):  # the server closes its connection right away
                await other.account.me()
                await asyncio.sleep(0.05)
        assert err.value.code == "SESSION_INVALID"
        reuse = Client(shared_server.url, Profile(token=other.profile.token or "pgn_gone"))
        with pytest.raises(Unauthorized):
            await reuse.connect()
        assert [s.id for s in await main.sessions.list()] == [main.profile.session_id]
    finally:
        await main.close()
        await other.close()
