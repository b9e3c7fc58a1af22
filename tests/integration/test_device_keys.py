"""Device keys and device-to-device envelopes through a real server process (issue 9,
deliverables 1-3): the SDK publishes keys, claims, starts Olm sessions and sends one
encrypted copy per device; the server stores public keys and opaque bytes only."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from pigeon.client import Client
from pigeon.crypto.vault import WrongPassphrase
from pigeon.domain import keys as rules
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.errors import InvalidArgument, NotFound, Unauthorized
from pigeon.protocol.updates import Envelope
from pigeon.testing import login

PASSPHRASE = "correct horse battery staple"


async def next_envelope(client: Client, timeout: float = 5.0) -> Envelope:
    async def wait() -> Envelope:
        async for update in client.updates():
            if isinstance(update, Envelope):
                return update
        raise AssertionError("updates ended")
    return await asyncio.wait_for(wait(), timeout)


async def contacts(alice: Client, bob: Client) -> None:
    """Alice and Bob write to each other in a private chat: each may see and reach the
    other."""
    assert bob.profile.user_id is not None
    chat = await alice.chats.open_private(bob.profile.user_id)
    await alice.messages.send(chat.id, "hi")
    await bob.messages.send(chat.id, "hello")


async def test_marker_reaches_both_of_bobs_devices_and_never_the_server_in_clear(
        server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(server, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(server, pb, "Bob", profile=tmp_path / "bob", device="phone")
    bob2 = await login(server, pb, "Bob", profile=tmp_path / "bob2", device="laptop")
    try:
        await contacts(alice, bob)
        for client in (alice, bob, bob2):
            counts = await client.devices.open(PASSPHRASE)
            assert counts.identity and counts.fallback
            assert counts.one_time_keys >= rules.LOW_ONE_TIME_KEYS
        marker = f"marker-{secrets.token_hex(8)}".encode()
        assert await alice.devices.send([bob.profile.user_id], marker) == 2
        for device in (bob, bob2):
            pushed = await next_envelope(device)  # online: pushed on its inbox stream
            assert pushed.sender_id == alice.profile.user_id
            assert pushed.sender_device == alice.profile.session_id
            got = await device.devices.receive()
            assert [(g.sender_id, g.sender_device, g.body, g.error) for g in got] == [
                (alice.profile.user_id, alice.profile.session_id, marker, None)]
            assert await device.devices.receive() == []  # acknowledged: deleted
        # The session goes on (normal messages now), both ways.
        assert await bob.devices.send([alice.profile.user_id], b"reply") == 1
        assert [g.body for g in await alice.devices.receive()] == [b"reply"]
        # Neither the server's database nor its WAL ever held the plaintext.
        files = [p for p in (server.data).rglob("*") if p.is_file()]
        assert any(p.name.endswith("-wal") for p in files)
        for path in files:
            assert marker not in path.read_bytes(), path
        # Nor do the devices' profiles hold a key or a session in the clear.
        for client in (alice, bob, bob2):
            identity = client.devices.identity
            for path in (client.profile.directory).rglob("*"):
                data = path.read_bytes() if path.is_file() else b""
                assert identity.curve25519.encode() not in data, path
                assert identity.ed25519.encode() not in data, path
    finally:
        for client in (alice, bob, bob2):
            await client.close()


async def test_a_passphrase_given_to_the_client_publishes_keys_at_sign_in(server, phone):
    pa = phone()
    client = Client(server.url, passphrase=PASSPHRASE)
    await client.connect()
    try:
        await client.auth.send_code(pa, sms=True)
        code = await asyncio.to_thread(server.code_for, pa)
        await client.auth.sign_in(code, name="Ann")
        assert client.devices.is_open
        counts = await client.call("keys.upload", m.UploadKeys())
        assert counts.identity and counts.fallback
        assert counts.one_time_keys == rules.WANTED_ONE_TIME_KEYS
    finally:
        await client.close()


async def test_wrong_passphrase_and_reopening(server, phone, tmp_path):
    alice = await login(server, phone(), "Alice", profile=tmp_path / "a")
    try:
        await alice.devices.open(PASSPHRASE)
        identity = alice.devices.identity
        again = Client(server.url, alice.profile)
        await again.connect()
        try:
            with pytest.raises(WrongPassphrase):
                await again.devices.open("not it")
            counts = await again.devices.open(PASSPHRASE)
            assert again.devices.identity == identity  # the same account, from the vault
            assert again.devices.top_ups == 0 and counts.one_time_keys >= rules.LOW_ONE_TIME_KEYS
        finally:
            await again.close()
    finally:
        await alice.close()


async def test_device_runs_low_and_tops_up_and_a_terminated_session_s_keys_go(
        server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await login(server, pa, "Alice")
    bob = await login(server, pb, "Bob", device="phone")
    try:
        await contacts(alice, bob)
        await bob.devices.open(PASSPHRASE)
        await alice.devices.open(PASSPHRASE)
        held = (await bob.call("keys.upload", m.UploadKeys())).one_time_keys
        assert held == rules.WANTED_ONE_TIME_KEYS
        uploads = bob.devices.top_ups
        # Claim until the server says Bob's device runs low: it tops up by itself.
        for _ in range(held - rules.LOW_ONE_TIME_KEYS):
            await alice.call("keys.claim", m.ClaimKeys(device_ids=[bob.profile.session_id]))
        await asyncio.sleep(0.3)
        assert bob.devices.top_ups == uploads  # not low yet: nothing said, nothing uploaded
        await alice.call("keys.claim", m.ClaimKeys(device_ids=[bob.profile.session_id]))
        for _ in range(100):
            if bob.devices.top_ups > uploads:
                break
            await asyncio.sleep(0.05)
        assert bob.devices.top_ups == uploads + 1
        counts = await bob.call("keys.upload", m.UploadKeys())
        assert counts.one_time_keys == rules.WANTED_ONE_TIME_KEYS
        # Bob logs that device out from another: its keys are gone at once.
        bob_id, phone_id = bob.profile.user_id, bob.profile.session_id
        other = await login(server, pb, "Bob", device="other")
        try:
            assert [d.device_id for d in await alice.devices.query([bob_id])] == [phone_id]
            await other.sessions.terminate(phone_id)
            assert [d.device_id for d in await alice.devices.query([bob_id])] == []
            assert await alice.call("keys.claim", m.ClaimKeys(device_ids=[phone_id])) == []
        finally:
            await other.close()
    finally:
        await alice.close()
        await bob.close()


async def test_authorization_and_bad_input(server, phone):
    alice = await login(server, phone(), "Alice")
    stranger = await login(server, phone(), "Stranger", username="keys_stranger")
    anonymous = Client(server.url)
    await anonymous.connect()
    try:
        for name, params in [("keys.upload", m.UploadKeys()),
                             ("keys.query", m.QueryKeys(user_ids=[1])),
                             ("keys.claim", m.ClaimKeys(device_ids=[1])),
                             ("envelopes.send", m.SendEnvelopes(envelopes=[
                                 m.Envelope(device_id=1, type=0, ciphertext=b"x")]))]:
            with pytest.raises(Unauthorized) as info:
                await anonymous.call(name, params)
            assert info.value.code == "AUTH_REQUIRED", name
        await stranger.devices.open(PASSPHRASE)
        await alice.devices.open(PASSPHRASE)
        # A stranger's devices are not listed, claimed or reachable.
        assert await alice.devices.query([stranger.profile.user_id]) == []
        assert await alice.call("keys.claim", m.ClaimKeys(
            device_ids=[stranger.profile.session_id])) == []
        with pytest.raises(NotFound) as info:
            await alice.call("envelopes.send", m.SendEnvelopes(envelopes=[
                m.Envelope(device_id=stranger.profile.session_id, type=0, ciphertext=b"x")]))
        assert info.value.code == "DEVICE_NOT_FOUND"
        # Found by username: visible, but an inbox is not for anyone who found one.
        await alice.call("users.resolve_username", m.ResolveUsername(username="keys_stranger"))
        assert [d.user_id for d in await alice.devices.query([stranger.profile.user_id])] == [
            stranger.profile.user_id]
        with pytest.raises(NotFound) as info:
            await alice.call("envelopes.send", m.SendEnvelopes(envelopes=[
                m.Envelope(device_id=stranger.profile.session_id, type=0, ciphertext=b"x")]))
        assert info.value.code == "DEVICE_NOT_FOUND"
        # Keys that are not signed by the device are refused.
        me = alice.devices.identity
        forged = m.SignedKey(key_id="AAAAAAAAAAA", key=me.curve25519, signature=me.signature)
        with pytest.raises(InvalidArgument) as info:
            await alice.call("keys.upload", m.UploadKeys(one_time_keys=[forged]))
        assert info.value.code == "KEY_SIGNATURE_INVALID"
        # Bounds of the wire: more keys, devices or bytes than allowed never reach a handler.
        for name, params in [
                ("keys.upload", m.UploadKeys(one_time_keys=[forged] * 101)),
                ("keys.claim", m.ClaimKeys(device_ids=list(range(1, 102)))),
                ("keys.query", m.QueryKeys(user_ids=[])),
                ("envelopes.send", m.SendEnvelopes(envelopes=[m.Envelope(
                    device_id=1, type=0, ciphertext=b"x" * (16 * 1024 + 1))]))]:
            with pytest.raises(InvalidArgument) as info:
                await alice.call(name, params)
            assert info.value.code == "INVALID_ARGUMENT", name
        # Another device's inbox stays unreadable.
        with pytest.raises(NotFound):
            await alice.call("updates.get_stream_difference", m.GetStreamDifference(
                stream=device_stream(stranger.profile.session_id), seq=0))
    finally:
        for client in (alice, stranger, anonymous):
            await client.close()
