"""The device-churn suite (issue 9, "No message a device should read stays unreadable"), in
the spirit of Matrix's Complement-Crypto: secret conversations through the real server
process while devices come and go, envelopes are dropped, duplicated and reordered, the
server restarts and one-time keys run out. Each case counts the messages that a device
entitled to read them cannot (:class:`churn_support.Ledger`) and asserts zero; a device
that could not decrypt something said why and healed by itself, nobody doing anything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pigeon.client import Client
from pigeon.client.devices import VAULT_FILE
from pigeon.client.inbox import InboxGap
from pigeon.client.secret_store import FILE as SECRET_FILE
from pigeon.crypto.payloads import Renew, encode_payload
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.keys import Envelope
from pigeon.protocol.streams import read_item
from pigeon.protocol.updates import Envelope as Delivered
from pigeon.testing import ServerProcess, login

from churn_support import (
    Device, FaultyRelay, Ledger, envelope_sends, inbox_pushes, until,
)
from cli_support import pigeon
from plaintext_scan import Relayed
from test_secret_chats import PASSPHRASE, cheap_kdf  # noqa: F401 (a fixture)


async def device(server, phone: str, name: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                 person: str) -> Device:
    client = await login(server, phone, person, profile=tmp_path / name, device=name)
    await client.secret.open(PASSPHRASE)
    return Device(name, client)


async def introduce(a: Device, b: Device) -> None:
    """Make them contacts (a secret chat is between contacts)."""
    chat = await a.client.chats.open_private(b.user_id)
    await a.client.messages.send(chat.id, "hi")
    await b.client.messages.send(chat.id, "hello")


async def close(*devices: Device) -> None:
    for d in devices:
        await d.client.close()


async def inbox_items(client: Client) -> list[Delivered]:
    """What waits in the device's inbox on the server, read without acknowledging."""
    page = await client.call("updates.get_stream_difference", m.GetStreamDifference(
        stream=device_stream(client.devices.device_id), seq=0))
    return [b for b in (read_item(i).body for i in page.items) if isinstance(b, Delivered)]


async def test_devices_added_and_removed_mid_conversation(shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    targets: list[int] = []

    def record(direction: str, frame: dict) -> str:  # type: ignore[type-arg]
        if direction == "up" and envelope_sends(frame):
            targets.extend(e["device_id"] for e in frame["params"]["envelopes"])
        return "pass"

    relay = await FaultyRelay(shared_server.url, record).start()
    via = Relayed(shared_server, relay)
    alice = await device(via, pa, "alice", tmp_path, "Alice")
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    everyone = [alice, bob]
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        await ledger.send(alice, bob, "before anyone joined", [bob])
        bob2 = await device(shared_server, pb, "bob2", tmp_path, "Bob")
        everyone.append(bob2)
        await ledger.send(alice, bob, "bob2 reads this", [bob, bob2])
        await ledger.send(bob2, alice, "from bob's new device", [alice, bob])
        alice2 = await device(shared_server, pa, "alice2", tmp_path, "Alice")
        everyone.append(alice2)
        await ledger.send(bob, alice, "four devices now", [alice, alice2, bob2])
        assert await ledger.count_unreadable(everyone) == 0
        # bob2 is logged out (by Bob's first device): nothing sent after reaches it.
        gone = bob2.client.devices.device_id
        await bob.client.sessions.terminate(gone)
        everyone.remove(bob2)
        targets.clear()
        await ledger.send(alice, bob, "after bob2 left", [bob, alice2])
        await ledger.send(alice2, bob, "and from alice2", [bob, alice])
        assert gone not in targets and bob.client.devices.device_id in targets
        assert await ledger.count_unreadable(everyone) == 0
        assert {d.name: d.undecryptable for d in everyone} == {d.name: [] for d in everyone}
        # A device that joined later has nothing from before.
        assert "before anyone joined" not in {m.text for m in await alice2.client.secret.history(
            alice2.client.secret.chat_with(bob.user_id) or 0)}
    finally:
        await close(*everyone, bob2)
        await relay.close()


async def test_logout_and_login_again_on_a_profile(shared_server, phone, tmp_path):
    """The same program logs its profile out and in again: a new device, which reads
    everything sent to it after, and nothing from before."""
    pa, pb = phone(), phone()
    alice = await device(shared_server, pa, "alice", tmp_path, "Alice")
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        await ledger.send(alice, bob, "one", [bob])
        await ledger.send(alice, bob, "two", [bob])
        assert await ledger.count_unreadable([bob]) == 0
        old = bob.client.devices.device_id
        await bob.client.auth.log_out()
        await bob.client.auth.send_code(pb, sms=True)
        code = await asyncio.to_thread(shared_server.code_for, pb)
        await bob.client.auth.sign_in(code, device="bob again")
        assert bob.client.devices.device_id != old
        bob.name = "bob again"
        await ledger.send(alice, bob, "to the new device", [bob])
        await ledger.send(bob, alice, "from the new device", [alice])
        await ledger.send(alice, bob, "and back", [bob])
        assert await ledger.unreadable([alice, bob]) == {}
        assert {m.text for m in await bob.client.secret.history(
            bob.client.secret.chat_with(alice.user_id) or 0)} == {
                "to the new device", "from the new device", "and back"}
        assert bob.undecryptable == alice.undecryptable == []
    finally:
        await close(alice, bob)


@pytest.fixture(scope="module")
def restartable(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A server the tests stop and start, told to let devices come back at once after a
    planned stop."""
    env = {"PIGEON_RESTART_DOWNTIME": "0", "PIGEON_RESTART_WINDOW_MAX": "0"}
    with ServerProcess(tmp_path_factory.mktemp("restartable") / "data", env=env) as proc:
        yield proc


async def test_a_device_offline_past_the_retention(restartable, phone, tmp_path):
    """What the server purged unread is reported as lost (how many); what comes after is
    read. (The purge is forced: the server restarts with a retention of a millisecond,
    then with the default again.)"""
    server = restartable
    alice = await device(server, phone(), "alice", tmp_path, "Alice")
    bob = await device(server, phone(), "bob", tmp_path, "Bob")
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        await ledger.send(alice, bob, "read in time", [bob])
        assert await ledger.count_unreadable([bob]) == 0
        # Bob stops reading; three messages wait for him, past the retention.
        for text in ("lost 1", "lost 2", "lost 3"):
            await alice.client.secret.send(None, text, user_id=bob.user_id)
        normal = dict(server.env or {})
        await asyncio.to_thread(server.stop)
        server.env = {**normal, "PIGEON_DEVICE_INBOX_RETENTION": "0.001",
                      "PIGEON_DEVICE_INBOX_PURGE_EVERY": "0.05"}
        await asyncio.to_thread(server.restart)

        async def purged() -> bool:
            return not await inbox_items(bob.client)

        await until(purged, "the server to purge bob's inbox")
        await asyncio.to_thread(server.stop)
        server.env = normal
        await asyncio.to_thread(server.restart)
        await bob.client.secret.receive()
        bob.collect()
        assert [(g.count, g.first, g.last) for g in bob.gaps] == [(3, 3, 5)]
        await ledger.send(alice, bob, "after the purge", [bob])
        await ledger.send(bob, alice, "bob is back", [alice])
        assert await ledger.unreadable([alice, bob]) == {}
        assert len(bob.gaps) == 1  # reported once
        assert bob.undecryptable == []
    finally:
        await close(alice, bob)


def faults(down: list[str], up: list[str]) -> FaultyRelay:
    """A relay applying ``down`` in turn to the device-inbox pushes it sees, and ``up`` to
    the envelope sends (then passing everything)."""
    plans = {"down": iter(down), "up": iter(up)}

    def rule(direction: str, frame: dict) -> str:  # type: ignore[type-arg]
        if inbox_pushes(frame) if direction == "down" else envelope_sends(frame):
            return next(plans[direction], "pass")
        return "pass"

    return FaultyRelay("", rule)


async def test_envelopes_dropped_duplicated_and_reordered(shared_server, phone, tmp_path):
    # Pushes of envelopes are lost, repeated and overtaken; envelopes are sent twice, and
    # the connection fails just after the server took a send (the SDK sends it again).
    relay = faults(down=["pass", "drop", "dup", "hold", "pass", "hold", "drop", "dup", "drop"],
                   up=["pass", "dup", "cut", "pass", "dup", "cut", "dup"])
    relay.upstream = shared_server.url
    await relay.start()
    via = Relayed(shared_server, relay)
    alice = await device(via, phone(), "alice", tmp_path, "Alice")
    pb = phone()
    bob = await device(via, pb, "bob", tmp_path, "Bob")
    bob2 = await device(shared_server, pb, "bob2", tmp_path, "Bob")
    ledger = Ledger()
    everyone = [alice, bob, bob2]
    try:
        await introduce(alice, bob)
        bob.client.secret.follow()
        for i in range(8):
            await ledger.send(alice, bob, f"a{i}", [bob, bob2])
            if i % 3 == 2:
                await ledger.send(bob, alice, f"b{i}", [alice, bob2])
        expected = ledger.entitled["bob"]

        async def bob_has_all() -> bool:
            return expected <= await bob.held()

        # Following: what a dropped push hid is fetched at the next one; the last messages
        # are then there without anyone asking (a receive() would hide a stuck follower).
        await ledger.send(alice, bob, "last", [bob, bob2])
        await until(bob_has_all, "bob's follower to read every message")
        assert set(relay.done) == {"drop", "dup", "hold", "cut"}
        assert await ledger.unreadable(everyone) == {}
        for d in everyone:
            # A copy read twice is skipped; nothing failed to decrypt.
            assert d.undecryptable == [], d.name
    finally:
        await close(*everyone)
        await relay.close()


async def test_server_restarted_mid_send(restartable, phone, tmp_path):
    """SIGTERM, then kill -9, while both people send at once and one follows: nothing
    acknowledged is lost, and every message reads on every device entitled to it."""
    server = restartable
    pa, pb = phone(), phone()
    alice = await device(server, pa, "alice", tmp_path, "Alice")
    bob = await device(server, pb, "bob", tmp_path, "Bob")
    bob2 = await device(server, pb, "bob2", tmp_path, "Bob")
    everyone = [alice, bob, bob2]
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        await ledger.send(alice, bob, "opening", [bob, bob2])
        bob2.client.secret.follow()

        async def talk(sender: Device, peer: Device, readers: list[Device], tag: str) -> None:
            for i in range(6):
                await ledger.send(sender, peer, f"{tag}{i}", readers)

        for stop in (server.stop, server.kill):
            sending = asyncio.gather(talk(alice, bob, [bob, bob2], "a"),
                                     talk(bob, alice, [alice, bob2], "b"))
            await until(lambda: asyncio.sleep(0, ledger.sent > 3), "the first sends")
            await asyncio.to_thread(stop)
            await asyncio.to_thread(server.restart)
            await asyncio.wait_for(sending, 30)
            assert await ledger.unreadable(everyone) == {}
        for d in everyone:
            assert d.undecryptable == [], d.name
    finally:
        await close(*everyone)


async def test_one_time_keys_exhausted_the_fallback_key_is_used(shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await device(shared_server, pa, "alice", tmp_path, "Alice")
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    ledger = Ledger()
    everyone = [alice, bob]
    try:
        await introduce(alice, bob)
        bob_device = bob.client.devices.device_id
        await bob.client.close()  # away: it cannot top its keys up
        claimed = []
        while not claimed or not claimed[-1].fallback:
            (key,) = await alice.client.call("keys.claim", m.ClaimKeys(device_ids=[bob_device]))
            claimed.append(key)
        assert len(claimed) > 1 and not claimed[0].fallback
        # Two devices of Alice start sessions with Bob's device on its fallback key.
        await ledger.send(alice, bob, "on the fallback key", [bob])
        alice2 = await device(shared_server, pa, "alice2", tmp_path, "Alice")
        everyone.append(alice2)
        await ledger.send(alice2, bob, "on it again", [bob, alice])
        bob.client = Client(shared_server.url, tmp_path / "bob")
        await bob.client.connect()
        await bob.client.secret.open(PASSPHRASE)  # tops up first, then reads its inbox
        assert await ledger.unreadable(everyone) == {}
        await ledger.send(bob, alice, "answered", [alice, alice2])
        assert await ledger.unreadable(everyone) == {}
        assert bob.undecryptable == []
        counts = await bob.client.call("keys.upload", m.UploadKeys())
        assert counts.one_time_keys >= counts.low  # topped up again
    finally:
        await close(*everyone)


async def test_two_devices_start_a_chat_with_each_other_at_once(shared_server, phone, tmp_path):
    pa, pb = phone(), phone()
    alice = await device(shared_server, pa, "alice", tmp_path, "Alice")
    alice2 = await device(shared_server, pa, "alice2", tmp_path, "Alice")
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    everyone = [alice, alice2, bob]
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        bob.client.secret.follow()
        sent = await asyncio.gather(
            alice.client.secret.send(None, "alice first", user_id=bob.user_id),
            bob.client.secret.send(None, "bob first", user_id=alice.user_id),
            alice2.client.secret.send(None, "alice2 first", user_id=bob.user_id))
        for message, readers in zip(sent, ([alice2, bob], [alice, alice2], [alice, bob]),
                                    strict=True):
            ledger.note(message, readers)
        assert await ledger.unreadable(everyone) == {}
        chats = {d.client.secret.chat_with(d.user_id ^ alice.user_id ^ bob.user_id)
                 for d in everyone}
        assert len(chats) == 1  # every device keeps the same one
        await ledger.send(alice2, bob, "then", [alice, bob])
        await ledger.send(bob, alice, "and", [alice, alice2])
        assert await ledger.unreadable(everyone) == {}
        for d in everyone:
            assert d.undecryptable == [], d.name
    finally:
        await close(*everyone)


async def test_a_device_that_cannot_decrypt_says_why_and_heals(shared_server, phone, tmp_path,
                                                               monkeypatch):
    """A ciphertext that no session decrypts (here, an altered copy): the device reports
    it, with the reason, to the SDK and to `pigeon receive --json`, asks the sender's
    device for a new session by itself, and reads what comes next."""
    alice = await device(shared_server, phone(), "alice", tmp_path, "Alice")
    monkeypatch.undo()  # Bob's keys at the real cost: the `pigeon` command opens them too
    bob = await device(shared_server, phone(), "bob", tmp_path, "Bob")
    try:
        await introduce(alice, bob)
        ledger = Ledger()
        await ledger.send(alice, bob, "fine", [bob])
        assert await ledger.count_unreadable([bob]) == 0
        await alice.client.secret.send(None, "altered on the way", user_id=bob.user_id)
        (genuine,) = await inbox_items(bob.client)
        await bob.client.inbox.receive()
        bob.collect()
        altered = bytearray(genuine.ciphertext)
        altered[len(altered) // 2] ^= 1
        await alice.client.call("envelopes.send", m.SendEnvelopes(envelopes=[Envelope(
            device_id=bob.client.devices.device_id, type=genuine.type,
            ciphertext=bytes(altered))]))
        await bob.client.secret.close()
        await bob.client.close()
        passphrase = tmp_path / "pass"
        passphrase.write_text(PASSPHRASE)
        result = await asyncio.to_thread(pigeon, tmp_path / "bob", "--passphrase-file",
                                         str(passphrase), "receive", "--json")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        (failed,) = [x for x in lines if x.get("type") == "undecryptable"]
        assert failed["sender"] == alice.user_id and failed["error"]
        bob.client = Client(shared_server.url, tmp_path / "bob")
        await bob.client.connect()
        await bob.client.secret.open(PASSPHRASE)
        await alice.client.secret.receive()  # Bob's device asked for a new session
        await ledger.send(alice, bob, "healed", [bob])
        assert await ledger.unreadable([alice, bob]) == {}
        assert not [g for g in bob.events if isinstance(g, InboxGap)]
    finally:
        await close(alice, bob)


async def test_a_device_back_from_an_old_backup_heals_and_misses_nothing(
        shared_server, phone, tmp_path):
    """Bob's device comes back with its keys and history as they were before the chat (a
    restored backup): it cannot read what Alice sent since, says so, asks her device for a
    new session, and her device sends again, on it, what Bob's missed, with the chat."""
    alice = await device(shared_server, phone(), "alice", tmp_path, "Alice")
    bob = await device(shared_server, phone(), "bob", tmp_path, "Bob")
    ledger = Ledger()
    try:
        await introduce(alice, bob)
        backup = {name: (tmp_path / "bob" / name).read_bytes()
                  for name in (VAULT_FILE, SECRET_FILE) if (tmp_path / "bob" / name).exists()}
        await ledger.send(alice, bob, "before the restore", [bob])
        assert await ledger.count_unreadable([bob]) == 0
        await ledger.send(bob, alice, "answered", [alice])  # her next ones are not pre-key
        assert await ledger.count_unreadable([alice]) == 0
        chat = alice.client.secret.chat_with(bob.user_id) or 0
        await alice.client.secret.set_ttl(chat, 3600)
        assert await ledger.count_unreadable([bob]) == 0
        await bob.client.close()
        for name in (VAULT_FILE, SECRET_FILE):
            (tmp_path / "bob" / name).unlink(missing_ok=True)
        for name, data in backup.items():
            (tmp_path / "bob" / name).write_bytes(data)
        bob.client = Client(shared_server.url, tmp_path / "bob")
        await bob.client.connect()
        await bob.client.secret.open(PASSPHRASE)
        await ledger.send(alice, bob, "after the restore", [bob])
        await bob.client.secret.receive()  # cannot decrypt: says why, asks for a session
        bob.collect()
        (failed,) = bob.undecryptable
        assert "session" in failed.error
        await alice.client.secret.receive()  # the Renew: she sends again what he missed
        assert await ledger.unreadable([bob]) == {}
        assert bob.client.secret.chats()[0].ttl == 3600  # her renewal's chat was taken
        await ledger.send(alice, bob, "and on", [bob])
        assert await ledger.unreadable([alice, bob]) == {}
    finally:
        await close(alice, bob)


async def test_a_renewal_never_brings_a_later_device_what_came_before_it(
        shared_server, phone, tmp_path):
    """A device that joined later (or one an attacker logged in) asking for everything
    since the beginning gets again only what was sent to it."""
    alice = await device(shared_server, phone(), "alice", tmp_path, "Alice")
    pb = phone()
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    late = None
    try:
        await introduce(alice, bob)
        await alice.client.secret.send(None, "before the new device", user_id=bob.user_id)
        late = await device(shared_server, pb, "late", tmp_path, "Bob")
        await alice.client.secret.send(None, "after it", user_id=bob.user_id)
        await late.client.secret.receive()
        (alice_device,) = [d for d in await late.client.devices.query([alice.user_id])]
        await late.client.devices.renew(alice_device, encode_payload(Renew(since=0)))
        await alice.client.secret.receive()
        await late.client.secret.receive()
        assert {m.text for m in await late.client.secret.history(
            late.client.secret.chat_with(alice.user_id) or 0)} == {"after it"}
    finally:
        await close(alice, bob, *([late] if late else []))


async def group_texts(d: Device, chat_id: int) -> set[str]:
    """What the device reads of an end-to-end group once its inbox is read (keys, and the
    answers to what it asked for, twice: an ask goes out after the first read)."""
    for _ in range(2):
        await d.client.inbox.receive()
    d.client.secret_groups.take_resolved()
    return {m.text for m in await d.client.secret_groups.history(chat_id)
            if m.text is not None}


async def test_an_e2e_group_while_devices_come_and_go_and_pushes_fail(
        shared_server, phone, tmp_path):
    """A Megolm group: a device of a member logs in mid-conversation and reads what follows;
    a member's pushes of keys are dropped, repeated and reordered; a removed member reads
    nothing after. Every device entitled to a message reads it."""
    relay = faults(down=["drop", "dup", "hold", "pass", "drop", "dup"], up=["dup", "pass", "dup"])
    relay.upstream = shared_server.url
    await relay.start()
    pa, pb, pc = phone(), phone(), phone()
    alice = await device(Relayed(shared_server, relay), pa, "alice", tmp_path, "Alice")
    bob = await device(shared_server, pb, "bob", tmp_path, "Bob")
    carol = await device(Relayed(shared_server, relay), pc, "carol", tmp_path, "Carol")
    everyone = [alice, bob, carol]
    entitled: dict[str, set[str]] = {}

    async def send(sender: Device, text: str, readers: list[Device]) -> Any:
        sent = await sender.client.secret_groups.send(chat.id, text)
        for reader in readers:
            entitled.setdefault(reader.name, set()).add(text)
        return sent.message

    async def unreadable(devices: list[Device]) -> dict[str, list[str]]:
        missing = {}
        for d in devices:
            lacking = entitled.get(d.name, set()) - await group_texts(d, chat.id)
            if lacking:
                missing[d.name] = sorted(lacking)
        return missing

    try:
        await introduce(alice, bob)
        await introduce(alice, carol)
        chat = await alice.client.secret_groups.create("Desk", [bob.user_id, carol.user_id])
        carol.client.secret.follow()  # keys pushed through the faulty relay
        await send(alice, "g1", [bob, carol])
        await send(bob, "g2", [alice, carol])
        bob2 = await device(shared_server, pb, "bob2", tmp_path, "Bob")
        everyone.append(bob2)
        await send(alice, "g3", [bob, bob2, carol])
        await send(bob2, "g4", [alice, bob, carol])
        await send(carol, "g5", [alice, bob, bob2])
        assert await unreadable(everyone) == {}
        await alice.client.chats.remove_member(chat.id, carol.user_id)
        after = await send(alice, "g6 (not for carol)", [bob, bob2])
        await send(bob, "g7 (not for carol)", [alice, bob2])
        assert await unreadable([alice, bob, bob2]) == {}
        await carol.client.inbox.receive()
        [unread] = await carol.client.secret_groups.decrypt([after])  # say it leaked to her
        assert unread.text is None
        assert {"drop", "dup", "hold"} <= set(relay.done)
    finally:
        await close(*everyone)
        await relay.close()
