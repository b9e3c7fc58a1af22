"""Prove the server never holds plaintext (issue 9): a conversation over device-to-device
envelopes, through the real server process and a recording proxy, then a scan of the
server's database files (with the WAL and shared memory), its log, every frame it relayed,
and both devices' profile directories, for the marker and for key material.

The conversation: raw envelopes of ``client.devices``, then a 1:1 secret chat
(``client.secret``: start, a message each way, a self-destruct timer, the shown receipt),
then an end-to-end encrypted group (Megolm: a message each way; its session keys are
needles too)."""

from __future__ import annotations

import pytest
import vodozemac
from plaintext_scan import marker, scan, scanned_places

from pigeon.testing import login

pytestmark = pytest.mark.slow
PASSPHRASE = "correct horse battery staple"


async def test_envelopes_leave_no_marker_and_no_key_on_the_server_or_in_profiles(
        proxied, phone, tmp_path):
    server = proxied.server
    profiles = [tmp_path / "alice", tmp_path / "bob"]
    alice = await login(proxied, phone(), "Alice", profile=profiles[0])
    bob = await login(proxied, phone(), "Bob", profile=profiles[1])
    try:
        assert bob.profile.user_id is not None and alice.profile.user_id is not None
        chat = await alice.chats.open_private(bob.profile.user_id)
        # The control: a plain message is readable by the server by design; the scan must
        # find it in the database and in the frames, or it looks in the wrong places.
        control = marker()
        await alice.messages.send(chat.id, control.decode())
        await bob.messages.send(chat.id, "hello")
        for client in (alice, bob):
            await client.devices.open(PASSPHRASE)
        secret = marker()
        assert await alice.devices.send([bob.profile.user_id], secret) == 1
        assert [m.body for m in await bob.devices.receive()] == [secret]
        reply = marker()
        assert await bob.devices.send([alice.profile.user_id], reply) == 1
        assert [m.body for m in await alice.devices.receive()] == [reply]

        # A 1:1 secret chat, as the CLI holds it: each side's history kept on its device.
        for client in (alice, bob):
            await client.secret.open()
        chat_id = await alice.secret.start(bob.profile.user_id)
        said, answered = marker(), marker()
        await alice.secret.send(chat_id, said.decode(), ttl=3600)
        await bob.secret.receive()
        assert [m.text for m in await bob.secret.history(chat_id)] == [said.decode()]
        await bob.secret.mark_shown(chat_id)
        await bob.secret.send(chat_id, answered.decode())
        await alice.secret.receive()
        assert [m.text for m in await alice.secret.history(chat_id)] == [
            said.decode(), answered.decode()]

        # An end-to-end encrypted group: Megolm, its session keys shared over Olm.
        group = await alice.secret_groups.create("Desk", [bob.profile.user_id])
        posted, replied = marker(), marker()
        await alice.secret_groups.send(group.id, posted.decode())
        await bob.inbox.receive()
        await bob.secret_groups.send(group.id, replied.decode())
        await alice.inbox.receive()
        for client in (alice, bob):
            client.secret_groups.take_resolved()
            assert [m.text for m in reversed(await client.secret_groups.history(group.id))] \
                == [posted.decode(), replied.decode()]

        needles = {"secret": secret, "reply": reply, "passphrase": PASSPHRASE.encode(),
                   "secret chat message": said, "secret chat answer": answered,
                   "group message": posted, "group reply": replied}
        for name, client in (("alice", alice), ("bob", bob)):
            # What opens a device's keys: the vault's derived keys. (vodozemac does not
            # export Olm message keys; group tests add their Megolm session keys here.)
            vault = client.devices.vault
            needles[f"{name} pickle key"] = vault.pickle_key
            needles[f"{name} vault key"] = vault._key
            state = await client.secret_groups._opened()
            for out in state.outbound.values():  # the Megolm keys that read the group
                session = vodozemac.GroupSession.from_pickle(out.pickle, vault.pickle_key)
                needles[f"{name} megolm key"] = session.session_key.to_base64().encode()
            assert f"{name} megolm key" in needles  # each sent in the group: each has one
    finally:
        await alice.close()
        await bob.close()
    # While it runs (the WAL and shared memory hold the latest writes), then after a clean
    # stop (checkpointed into the database file).
    for running in (True, False):
        if running:
            places = scanned_places(server)
            assert any(name.endswith("-wal") for name in places), places
        else:
            server.stop()
        found = scan({"control": control}, server=server, proxy=proxied.relay,
                     profiles=profiles)
        assert any("server file" in f for f in found), found
        assert any("frame" in f for f in found), found
        assert scan(needles, server=server, proxy=proxied.relay, profiles=profiles) == []
    # The ciphertext did go through the proxy: the sends up, the pushed envelopes down.
    frames = proxied.relay.frames
    assert sum(b"envelopes.send" in data for d, data in frames if d == "up") >= 5
    assert sum(b"envelope" in data for d, data in frames if d == "down") >= 4
