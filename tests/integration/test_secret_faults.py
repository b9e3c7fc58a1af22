"""Secret chats under faults (issue 9, "Bad input and faults"), through the real server:
a replayed ciphertext is refused (a copy of one read is skipped, not reported), a flipped
bit is a "cannot decrypt" state and never a crash, a device that lost its sessions heals
by itself, two people starting a chat with each other at once both read it, and `kill -9`
of the server loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import shutil

from pigeon.client import Client
from pigeon.client.devices import VAULT_FILE
from pigeon.client.secret import SecretMessage, Undecryptable
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.keys import Envelope
from pigeon.protocol.streams import read_item
from pigeon.protocol.updates import Envelope as Delivered
from pigeon.testing import login

from test_secret_chats import (  # noqa: F401 (cheap_kdf: a fixture)
    PASSPHRASE, cheap_kdf, contacts, opened, secret_events,
)


async def pair(server, phone, tmp_path) -> tuple[Client, Client]:  # type: ignore[no-untyped-def]
    alice = await login(server, phone(), "Alice", profile=tmp_path / "alice")
    bob = await login(server, phone(), "Bob", profile=tmp_path / "bob")
    await contacts(alice, bob)
    await opened(alice, bob)
    return alice, bob


async def waiting(client: Client) -> list[Delivered]:
    """The envelopes in the client's inbox, read without acknowledging them."""
    page = await client.call("updates.get_stream_difference", m.GetStreamDifference(
        stream=device_stream(client.devices.device_id), seq=0))
    return [body for body in (read_item(i).body for i in page.items)
            if isinstance(body, Delivered)]


async def resend(sender: Client, target: Client, envelope: Delivered, ciphertext: bytes) -> None:
    await sender.call("envelopes.send", m.SendEnvelopes(envelopes=[Envelope(
        device_id=target.devices.device_id, type=envelope.type, ciphertext=ciphertext)]))


async def test_replayed_and_altered_ciphertexts_are_refused_and_reported(
        shared_server, phone, tmp_path):
    alice, bob = await pair(shared_server, phone, tmp_path)
    try:
        assert bob.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        await alice.secret.send(chat, "once")
        (opening, text) = await waiting(bob)
        await bob.secret.receive()
        assert [e.text for e in secret_events(bob) if isinstance(e, SecretMessage)] == ["once"]
        # The same ciphertext again: refused, as a copy of one read (no new session
        # asked for, nothing reported unreadable: its message was read).
        await resend(alice, bob, text, text.ciphertext)
        await bob.secret.receive()
        assert secret_events(bob) == []
        assert bob.inbox.duplicates == 1
        assert [x.text for x in await bob.secret.history(chat)] == ["once"]
        # A flipped bit in a new message: "cannot decrypt", the inbox goes on.
        await alice.secret.send(chat, "flipped")
        (fresh,) = await waiting(bob)
        await bob.inbox.receive()  # (acknowledges the genuine copy: it is read)
        altered = bytearray(fresh.ciphertext)
        altered[len(altered) // 2] ^= 0x01
        await resend(alice, bob, fresh, bytes(altered))
        await bob.secret.receive()
        events = secret_events(bob)
        assert [type(e) for e in events] == [SecretMessage, Undecryptable]
        assert "decrypt" in events[1].error or "Olm" in events[1].error
        await alice.secret.send(chat, "after")
        await bob.secret.receive()
        assert [x.text for x in await bob.secret.history(chat)] == ["once", "flipped", "after"]
        assert bob.inbox.undecryptable == 1
    finally:
        await alice.close()
        await bob.close()


async def test_a_device_that_lost_its_sessions_heals_without_anyone(shared_server, phone, tmp_path):
    alice, bob = await pair(shared_server, phone, tmp_path)
    try:
        assert alice.profile.user_id is not None and bob.profile.user_id is not None
        saved = tmp_path / "old-vault"
        shutil.copy(tmp_path / "bob" / VAULT_FILE, saved)  # before any session
        chat = await alice.secret.start(bob.profile.user_id)
        await bob.secret.receive()
        await bob.secret.send(chat, "hello")  # Alice's next messages are normal Olm ones
        await alice.secret.receive()
    finally:
        await bob.close()
    # Bob's device comes back with its keys as before any session: it has none with Alice.
    shutil.copy(saved, tmp_path / "bob" / VAULT_FILE)
    bob = Client(shared_server.url, tmp_path / "bob")
    await bob.connect()
    try:
        await bob.secret.open(PASSPHRASE)
        await alice.secret.send(chat, "lost")
        await bob.secret.receive()  # cannot decrypt: says so, and asks for a new session
        assert [type(e) for e in secret_events(bob)] == [Undecryptable]
        # The Renew: Alice answers on the new session, sending again what Bob missed.
        await alice.secret.receive()
        await alice.secret.send(chat, "healed")
        await bob.secret.receive()
        assert [x.text for x in await bob.secret.history(chat)] == ["hello", "lost", "healed"]
        assert [type(e) for e in secret_events(bob)] == [SecretMessage, SecretMessage]
    finally:
        await alice.close()
        await bob.close()


async def test_both_start_at_once_and_both_read(shared_server, phone, tmp_path):
    alice, bob = await pair(shared_server, phone, tmp_path)
    try:
        assert alice.profile.user_id is not None and bob.profile.user_id is not None
        a_chat, b_chat = await asyncio.gather(alice.secret.start(bob.profile.user_id),
                                              bob.secret.start(alice.profile.user_id))
        assert a_chat != b_chat
        await asyncio.gather(alice.secret.send(a_chat, "from alice"),
                             bob.secret.send(b_chat, "from bob"))
        await asyncio.gather(alice.secret.receive(), bob.secret.receive())
        chat = min(a_chat, b_chat)  # both keep the lower id
        assert alice.secret.chat_with(bob.profile.user_id) == chat
        assert bob.secret.chat_with(alice.profile.user_id) == chat
        await alice.secret.send(chat, "again")
        await bob.secret.receive()
        for client in (alice, bob):
            texts = sorted(x.text for x in await client.secret.history(chat))
            assert texts[:2] == ["again", "from alice"] or "from bob" in texts
            assert not [e for e in secret_events(client) if isinstance(e, Undecryptable)]
        assert sorted(x.text for x in await bob.secret.history(chat)) == [
            "again", "from alice", "from bob"]
    finally:
        await alice.close()
        await bob.close()


async def test_kill_9_mid_conversation_loses_no_acknowledged_envelope(server, phone, tmp_path):
    alice, bob = await pair(server, phone, tmp_path)
    try:
        assert bob.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        bob.secret.follow()
        acked: list[str] = []
        stop = asyncio.Event()

        async def talk() -> None:
            i = 0
            while not stop.is_set():
                await alice.secret.send(chat, f"m{i}")
                acked.append(f"m{i}")
                i += 1

        task = asyncio.create_task(talk())

        async def until(count: int) -> None:
            async def wait() -> None:
                while len(acked) < count:
                    if task.done():
                        task.result()  # the sender failed: say why
                        raise AssertionError("the sender stopped")
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(wait(), 60)

        await until(30)
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.restart)
        await until(len(acked) + 30)
        stop.set()
        await asyncio.wait_for(task, 60)
        await bob.secret.receive()
        texts = [x.text for x in await bob.secret.history(chat)]
        assert set(acked) <= set(texts)
        assert len(texts) == len(set(texts))  # a send made again is not shown twice
        assert bob.inbox.undecryptable == 0
    finally:
        await alice.close()
        await bob.close()


async def test_two_processes_of_one_device_take_turns(shared_server, phone, tmp_path):
    """Two programs on one profile (one device) each hold its Olm sessions: the one whose
    turn it is takes what the other saved (the CLI makes them take turns), so neither
    reuses a message key the other already spent."""
    alice, bob = await pair(shared_server, phone, tmp_path)
    twin = Client(shared_server.url, tmp_path / "alice")  # the same device, another program
    await twin.connect()
    try:
        assert bob.profile.user_id is not None
        await twin.secret.open(PASSPHRASE)
        chat = await alice.secret.start(bob.profile.user_id)
        await alice.secret.send(chat, "from alice")
        assert await twin.devices.reload_if_changed()
        assert await twin.secret.reload_if_changed()
        assert not await twin.devices.reload_if_changed()  # nothing new since
        await twin.secret.send(chat, "from her twin")
        assert await alice.devices.reload_if_changed()
        await alice.secret.reload_if_changed()
        await alice.secret.send(chat, "alice again")
        await bob.secret.receive()
        assert [x.text for x in await bob.secret.history(chat)] == [
            "from alice", "from her twin", "alice again"]
        assert bob.inbox.undecryptable == 0
        assert [x.text for x in await alice.secret.history(chat)] == [
            "from alice", "from her twin", "alice again"]
    finally:
        await twin.close()
        await alice.close()
        await bob.close()
