"""End-to-end encrypted groups through a real server process (issue 9, deliverable 4):
three people, one with two devices. The server relays ciphertext only; a removed member
reads nothing sent after; a device that lost a key asks for it and gets it re-shared."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from pigeon.client import Client, Profile
from pigeon.crypto.megolm import GroupState, load_state
from pigeon.crypto import vault as vault_module
from pigeon.protocol.errors import Forbidden, InvalidArgument
from pigeon.testing import login

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_module, "MEMORY_KIB", 8 * 1024)


async def contacts(alice: Client, other: Client) -> None:
    assert other.profile.user_id is not None
    chat = await alice.chats.open_private(other.profile.user_id)
    await other.messages.send(chat.id, "hello")  # they wrote to Alice: she may add them


async def texts(client: Client, chat_id: int) -> list[str | None]:
    """What the device reads of the group's history, oldest first, once its inbox is read."""
    await client.inbox.receive()
    client.secret_groups.take_resolved()
    return [m.text for m in reversed(await client.secret_groups.history(chat_id))]


async def _loaded(client: Client) -> GroupState:
    return await client.secret_groups._opened()  # what the vault file held


async def test_three_people_removal_and_re_request(server, phone, tmp_path) -> None:
    pa, pb, pc = phone(), phone(), phone()
    alice = await login(server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(server, pb, "Bob", profile=tmp_path / "bob", device="phone")
    bob2 = await login(server, pb, "Bob", profile=tmp_path / "bob2", device="laptop")
    carol = await login(server, pc, "Carol", profile=tmp_path / "carol")
    everyone = (alice, bob, bob2, carol)
    try:
        await contacts(alice, bob)
        await contacts(alice, carol)
        for client in everyone:
            await client.devices.open(PASSPHRASE)
        ids = [bob.profile.user_id, carol.profile.user_id]
        chat = await alice.secret_groups.create("Night desk", ids)  # type: ignore[arg-type]
        assert chat.secret and chat.member_count == 3
        with pytest.raises(Forbidden) as refused:
            await alice.messages.send(chat.id, "in clear")
        assert refused.value.code == "ENCRYPTION_REQUIRED"

        marker = f"marker-{secrets.token_hex(8)}"
        sent = await alice.secret_groups.send(chat.id, f"{marker} one")
        assert sent.message.text == "" and sent.message.ciphertext
        # Before Bob's device reads its inbox, the message waits for its key ...
        [early] = await bob.secret_groups.history(chat.id)
        assert (early.state, early.text) == ("pending", None)
        # ... and is decrypted when the key comes.
        await bob.inbox.receive()
        assert [m.text for m in bob.secret_groups.take_resolved()] == [f"{marker} one"]
        for device in (bob2, carol):
            assert await texts(device, chat.id) == [f"{marker} one"]
        await bob.secret_groups.send(chat.id, f"{marker} two")  # Bob's own session
        for device in (alice, bob2, carol):
            assert await texts(device, chat.id) == [f"{marker} one", f"{marker} two"]

        # Carol is removed: Alice's next message is under a new session she never gets.
        await alice.chats.remove_member(chat.id, carol.profile.user_id)  # type: ignore[arg-type]
        after = await alice.secret_groups.send(chat.id, f"{marker} three")
        assert alice.secret_groups.rotations == 2
        [unread] = await carol.secret_groups.decrypt([after.message])  # say it leaked to her
        assert unread.state == "pending"
        await alice.inbox.receive()   # her request: refused, not entitled
        await carol.inbox.receive()
        assert carol.secret_groups.take_resolved() == []

        # Bob's laptop lost the new key (its envelope dropped): it asks, and gets it again.
        await bob2.devices.receive()
        got = [m.state for m in await bob2.secret_groups.history(chat.id)]
        assert got == ["pending", "decrypted", "decrypted"]
        await alice.inbox.receive()   # re-shares to an entitled device
        await bob.inbox.receive()     # Bob's phone forwards it too (own device)
        await bob2.inbox.receive()
        assert [m.text for m in bob2.secret_groups.take_resolved()] == [f"{marker} three"]
        assert await texts(bob2, chat.id) == [f"{marker} {n}" for n in ("one", "two", "three")]

        # A restarted device keeps its keys and what waits for one (sealed in its vault).
        await carol.close()
        carol = Client(server.url, Profile.load(tmp_path / "carol"))
        everyone = (alice, bob, bob2, carol)
        await carol.connect()
        await carol.devices.open(PASSPHRASE)
        assert [p.message_id for p in (await _loaded(carol)).pending] == [after.message.id]
        [old] = await carol.secret_groups.decrypt([sent.message])
        assert old.text == f"{marker} one"

        # Plain groups are unchanged, and refuse ciphertext.
        plain = await alice.chats.create_group("Plain", [bob.profile.user_id])  # type: ignore[list-item]
        assert not plain.secret
        with pytest.raises(InvalidArgument) as wrong:
            await alice.messages.send(plain.id, "", ciphertext=sent.message.ciphertext)
        assert wrong.value.code == "CHAT_NOT_ENCRYPTED"

        # The server never held the plaintext; nor do the devices' profiles.
        for path in [p for p in server.data.rglob("*") if p.is_file()]:
            assert marker.encode() not in path.read_bytes(), path
        for client in everyone:
            assert client.profile.directory is not None
            for path in client.profile.directory.rglob("*"):
                if path.is_file():
                    assert marker.encode() not in path.read_bytes(), path
    finally:
        for client in everyone:
            await client.close()


async def test_concurrent_sends_share_one_write_and_each_is_on_disk_before_it_leaves(
        server, phone, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A send's ratchet must be on disk before its message leaves (a crash would otherwise
    reuse an index), but concurrent sends wait for one write, not one each (group commit).
    The first write is held until every send has encrypted: all the others then go in the
    second write, and every message sent is counted in the file."""
    alice = await login(server, phone(), "Alice", profile=tmp_path / "alice")
    bob = await login(server, phone(), "Bob", profile=tmp_path / "bob")
    try:
        await contacts(alice, bob)
        for client in (alice, bob):
            await client.devices.open(PASSPHRASE)
        chat = await alice.secret_groups.create("Desk", [bob.profile.user_id])  # type: ignore[list-item]
        await alice.secret_groups.send(chat.id, "key shared")
        groups = alice.secret_groups
        held, writes = asyncio.Event(), []
        real_save = vault_module.Vault.save

        async def save(self: vault_module.Vault, data: bytes) -> None:
            writes.append(len(data))
            if len(writes) == 1:
                await held.wait()
            await real_save(self, data)

        monkeypatch.setattr(vault_module.Vault, "save", save)
        base = groups._changed
        sends = [asyncio.create_task(groups.send(chat.id, f"m{n}")) for n in range(8)]
        deadline = asyncio.get_running_loop().time() + 30
        while groups._changed < base + 8:  # every send has encrypted and waits for the disk
            assert not any(t.done() for t in sends)
            assert asyncio.get_running_loop().time() < deadline, "sends wait for each other"
            await asyncio.sleep(0.01)
        held.set()
        await asyncio.gather(*sends)
        assert len(writes) == 2
        on_disk = load_state(await groups._file().read())  # what a restart would read
        assert on_disk.outbound[chat.id].sent == 9
        assert sorted(await texts(bob, chat.id)) == sorted(  # type: ignore[type-var]
            ["key shared", *(f"m{n}" for n in range(8))])
    finally:
        await alice.close()
        await bob.close()
