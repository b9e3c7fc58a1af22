"""Secret chats through a real server process (issue 9, deliverables 3, 5 and 7): every
device of both people reads them, each keeps its own encrypted history, timers destroy
what was shown, and what cannot be decrypted is reported and heals by itself."""

from __future__ import annotations

import asyncio
import secrets


from pigeon.client import Client
from pigeon.client.secret import SecretMessage, Undecryptable
from pigeon.testing import login

PASSPHRASE = "correct horse battery staple"


async def contacts(alice: Client, bob: Client) -> None:
    assert bob.profile.user_id is not None
    chat = await alice.chats.open_private(bob.profile.user_id)
    await alice.messages.send(chat.id, "hi")
    await bob.messages.send(chat.id, "hello")


def secret_events(client: Client) -> list[SecretMessage | Undecryptable]:
    return [u for u in client.take_updates() if isinstance(u, SecretMessage | Undecryptable)]


async def opened(*clients: Client) -> None:
    for client in clients:
        await client.secret.open(PASSPHRASE)


async def test_every_device_of_both_reads_it_and_nothing_is_in_the_clear(
        server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(server, pb, "Bob", profile=tmp_path / "bob", device="phone")
    bob2 = await login(server, pb, "Bob", profile=tmp_path / "bob2", device="laptop")
    alice2 = await login(server, pa, "Alice", profile=tmp_path / "alice2", device="tablet")
    everyone = (alice, alice2, bob, bob2)
    try:
        await contacts(alice, bob)
        await opened(*everyone)
        assert bob.profile.user_id is not None and alice.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        assert await alice.secret.start(bob.profile.user_id) == chat  # one per pair
        marker = f"marker-{secrets.token_hex(8)}"
        sent = await alice.secret.send(chat, marker, ttl=30)
        for device in (alice2, bob, bob2):
            await device.secret.receive()
            got = secret_events(device)
            assert [(g.chat_id, g.text, g.ttl, g.outgoing) for g in got
                    if isinstance(g, SecretMessage)] == [
                        (chat, marker, 30, device is alice2)]
            assert [m.message_id for m in await device.secret.history(chat)] == [
                sent.message_id]
        assert [c.peer_id for c in bob.secret.list()] == [alice.profile.user_id]
        # Bob answers by user: the same chat.
        await bob.secret.send(None, "reply", user_id=alice.profile.user_id)
        await alice.secret.receive()
        assert [m.text for m in await alice.secret.history(chat)] == [marker, "reply"]
        # Neither the server's files nor any profile hold the marker in the clear.
        for client in everyone:
            await client.secret.close()
        for path in [*server.data.rglob("*"), *tmp_path.rglob("*")]:
            if path.is_file():
                assert marker.encode() not in path.read_bytes(), path
    finally:
        for client in everyone:
            await client.close()


async def test_pushed_while_following_and_a_device_that_joins_later_sees_nothing(
        server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(server, pb, "Bob", profile=tmp_path / "bob")
    try:
        await contacts(alice, bob)
        await opened(alice, bob)
        bob.secret.follow()
        assert bob.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        await alice.secret.send(chat, "one")
        got = await asyncio.wait_for(next_secret(bob), 10)
        assert got.text == "one"
        late = await login(server, pb, "Bob", profile=tmp_path / "late", device="late")
        try:
            await late.secret.open(PASSPHRASE)
            await late.secret.receive()
            assert late.secret.list() == []
            await alice.secret.send(chat, "two")
            await late.secret.receive()
            assert [m.text for m in await late.secret.history(chat)] == ["two"]
        finally:
            await late.close()
    finally:
        await alice.close()
        await bob.close()


async def next_secret(client: Client) -> SecretMessage:
    async for update in client.updates():
        if isinstance(update, SecretMessage):
            return update
    raise AssertionError("updates ended")
