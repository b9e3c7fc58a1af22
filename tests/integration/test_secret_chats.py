"""Secret chats through a real server process (issue 9, deliverables 3, 5 and 7): every
device of both people reads them, each keeps its own encrypted history, timers destroy
what was shown, and what cannot be decrypted is reported and heals by itself."""

from __future__ import annotations

import asyncio
import secrets

import pytest


from pigeon.client import Client
from pigeon.crypto import vault
from pigeon.client.secret import SecretMessage, Undecryptable, check_ttl
from pigeon.testing import login

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch):  # type: ignore[no-untyped-def]
    """argon2id at a test's cost (the real one is half a second per opening, on purpose)."""
    monkeypatch.setattr(vault, "TIME_COST", 1)
    monkeypatch.setattr(vault, "MEMORY_KIB", 8 * 1024)


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
        shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(shared_server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(shared_server, pb, "Bob", profile=tmp_path / "bob", device="phone")
    bob2 = await login(shared_server, pb, "Bob", profile=tmp_path / "bob2", device="laptop")
    alice2 = await login(shared_server, pa, "Alice", profile=tmp_path / "alice2", device="tablet")
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
        assert [c.peer_id for c in bob.secret.chats()] == [alice.profile.user_id]
        # Bob answers by user: the same chat.
        await bob.secret.send(None, "reply", user_id=alice.profile.user_id)
        await alice.secret.receive()
        assert [m.text for m in await alice.secret.history(chat)] == [marker, "reply"]
        # Neither the server's files nor any profile hold the marker in the clear; nor does
        # a profile hold a key: the vault's, or the device's identity keys.
        secrets_held = [marker.encode()]
        for client in everyone:
            await client.secret.close()
            identity = client.devices.identity
            secrets_held += [client.devices.vault.pickle_key, identity.curve25519.encode(),
                             identity.ed25519.encode()]
        for path in [*shared_server.data.rglob("*"), *tmp_path.rglob("*")]:
            if path.is_file():
                data = path.read_bytes()
                assert marker.encode() not in data, path
                if tmp_path in path.parents:
                    assert not [s for s in secrets_held if s in data], path
    finally:
        for client in everyone:
            await client.close()


async def test_pushed_while_following_and_a_device_that_joins_later_sees_nothing(
        shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(shared_server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(shared_server, pb, "Bob", profile=tmp_path / "bob")
    try:
        await contacts(alice, bob)
        await opened(alice, bob)
        bob.secret.follow()
        assert bob.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        await alice.secret.send(chat, "one")
        got = await asyncio.wait_for(next_secret(bob), 10)
        assert got.text == "one"
        late = await login(shared_server, pb, "Bob", profile=tmp_path / "late", device="late")
        try:
            await late.secret.open(PASSPHRASE)
            await late.secret.receive()
            assert late.secret.chats() == []
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


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_timers_count_from_shown_and_hold_across_restarts(shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(shared_server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(shared_server, pb, "Bob", profile=tmp_path / "bob")
    clock = FakeClock()
    alice.secret.clock = bob.secret.clock = clock
    try:
        await contacts(alice, bob)
        await opened(alice, bob)
        assert bob.profile.user_id is not None
        chat = await alice.secret.start(bob.profile.user_id)
        await alice.secret.set_ttl(chat, 3600)  # the chat's default
        short = await alice.secret.send(chat, "short", ttl=30)
        default = await alice.secret.send(chat, "default")
        assert default.ttl == 3600
        await bob.secret.receive()
        assert bob.secret.chats()[0].ttl == 3600
        clock.now += 10_000  # not shown yet: nothing counts down
        assert await bob.secret.sweep() == 0
        assert sorted(await bob.secret.mark_shown(chat)) == sorted(
            [short.message_id, default.message_id])
        shown_at = clock.now
        clock.now += 29
        assert len(await bob.secret.history(chat)) == 2
        clock.now += 1
        assert [x.text for x in await bob.secret.history(chat)] == ["default"]
        # Alice's countdown starts when Bob's receipt arrives, on her clock.
        await alice.secret.receive()
        clock.now += 29
        assert len(await alice.secret.history(chat)) == 2
        clock.now += 1
        assert [x.text for x in await alice.secret.history(chat)] == ["default"]
        await bob.close()
        # An hour after it was shown, with Bob's client not running: gone when it opens.
        clock.now = shown_at + 3600
        bob = Client(shared_server.url, tmp_path / "bob")
        bob.secret.clock = clock
        await bob.connect()
        await bob.secret.open(PASSPHRASE)
        assert await bob.secret.history(chat) == []
        for client in (alice, bob):
            await client.secret.close()
        for path in (tmp_path / "bob").rglob("*"):
            if path.is_file():
                assert b"short" not in path.read_bytes() and b"default" not in path.read_bytes()
    finally:
        await alice.close()
        await bob.close()


async def test_bad_input_to_the_sdk(shared_server, phone, tmp_path):
    from pigeon.client.secret import NoSuchSecretChat
    from pigeon.crypto.vault import WrongPassphrase
    from pigeon.protocol.errors import Conflict, InvalidArgument

    alice = await login(shared_server, phone(), "Alice", profile=tmp_path / "alice")
    try:
        await alice.devices.open(PASSPHRASE)
        again = Client(shared_server.url, tmp_path / "alice")
        await again.connect()
        try:
            with pytest.raises(WrongPassphrase):
                await again.secret.open("wrong")
        finally:
            await again.close()
        await alice.secret.open()
        with pytest.raises(NoSuchSecretChat):
            await alice.secret.send(42, "x")
        with pytest.raises(NoSuchSecretChat):
            await alice.secret.history(42)
        with pytest.raises(Conflict):
            await alice.secret.start(alice.profile.user_id or 0)
        with pytest.raises(InvalidArgument):
            await alice.secret.send(None, "")
        for ttl in (0, -1, 7 * 24 * 3600 + 1):
            with pytest.raises(InvalidArgument):
                check_ttl(ttl)
    finally:
        await alice.close()
