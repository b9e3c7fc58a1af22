"""Secret chats across regions (issue 12, deliverable 6; docs/architecture.md, "Secret chats
across regions"): Alice lives in region a, Bob in region b with two devices. Device keys are
asked of the owner's region, one-time keys claimed there, envelopes carried by the regions'
stream and appended to each device's inbox once; the SDK is the one used at home. Region b
away: Alice's sends over the sessions she has are acknowledged, wait on a's side and
arrive once when b is back. Forged questions and envelopes on NATS are refused. The CLI's
commands and end-to-end encrypted groups work across regions as at home."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import msgspec
import nats
import pytest
from cli_support import ok, sign_up
from nats_support import nats_client
from plaintext_scan import encodings

from pigeon.client import Client
from pigeon.client.profile import Profile
from pigeon.client.secret import SecretMessage, Undecryptable
from pigeon.crypto import vault
from pigeon.domain.regions import ID_SHIFT
from pigeon.protocol import regions as wire
from pigeon.protocol.errors import Forbidden
from pigeon.protocol.region_keys import ClaimAsk, ClaimFound, KeysAsk, KeysFound
from pigeon.protocol.regions import CrossEnvelope, RemoteUser
from pigeon.protocol.updates import NewMessage
from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region
from pigeon.testing_regions import outbox_depth

pytestmark = pytest.mark.slow

PASSPHRASE = "correct horse battery staple"
_uk = itertools.count(1)


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(vault, "TIME_COST", 1)
    monkeypatch.setattr(vault, "MEMORY_KIB", 8 * 1024)


def uk_phone() -> str:
    return f"+447401{os.getpid() % 1000:03d}{next(_uk):03d}"


async def eventually(client: Client, done: Callable[[list[SecretMessage]], bool],
                     timeout: float = 40.0) -> list[SecretMessage]:
    """Read the device's inbox until ``done`` holds for the secret messages read so far."""
    got: list[SecretMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got):
        assert loop.time() < deadline, [g.text for g in got]
        await client.secret.receive()
        got += [u for u in client.take_updates() if isinstance(u, SecretMessage)]
        if not done(got):
            await asyncio.sleep(0.2)
    return got


async def first_text(client: Client, timeout: float = 30.0) -> None:
    async def wait() -> None:
        async for update in client.updates():
            if isinstance(update, NewMessage):
                return
    await asyncio.wait_for(wait(), timeout)


async def tied(a: Region, b: Region, pa: str, pb: str, tmp_path: Path
               ) -> tuple[Client, Client, Client, int]:
    """Alice in a, Bob in b with two devices, each wrote to the other (the tie at home and
    across regions), every device's secret state open."""
    alice = await login(a.node, pa, "Alice", profile=tmp_path / "alice")
    bob = await login(b.node, pb, "Bob", profile=tmp_path / "bob", device="phone")
    bob2 = await login(b.node, pb, "Bob", profile=tmp_path / "bob2", device="laptop")
    await bob.account.set_phone_discoverable(True)
    found = await alice.account.resolve_phone(pb)
    chat = await alice.chats.open_private(found.id)
    await alice.messages.send(chat.id, "hi")
    await first_text(bob)
    assert alice.profile.user_id is not None
    bob_chat = await bob.chats.open_private(alice.profile.user_id)
    await bob.messages.send(bob_chat.id, "hello")
    await first_text(alice)
    for client in (alice, bob, bob2):
        await client.secret.open(PASSPHRASE)
    assert bob.devices.device_id >> ID_SHIFT == 1  # a device's id says its region
    assert alice.devices.device_id >> ID_SHIFT == 0
    return alice, bob, bob2, found.id


async def database_text(url: str) -> bytes:
    """Every row of a region's database, as PostgreSQL prints it (bytea as hex)."""
    import asyncpg  # noqa: PLC0415

    conn = await asyncpg.connect(url)
    try:
        out = []
        for (table,) in await conn.fetch("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = 'public'"):
            out.append(await conn.fetchval(
                f'SELECT COALESCE(string_agg(t::text, E\'\\n\'), \'\') FROM "{table}" t'))
        return "\n".join(out).encode()
    finally:
        await conn.close()


def found_in(needle: bytes, places: dict[str, bytes]) -> list[str]:
    return [f"{form} in {where}" for form, value in encodings(needle).items()
            for where, data in places.items() if value in data]


def texts(got: list[SecretMessage]) -> list[str]:
    return [g.text for g in got]


async def test_a_secret_chat_across_regions(regions: tuple[Region, Region], phone,
                                            tmp_path) -> None:
    a, b = regions
    pb = uk_phone()
    alice, bob, bob2, bob_id = await tied(a, b, phone(), pb, tmp_path)
    everyone = [alice, bob, bob2]
    try:
        assert alice.profile.user_id is not None
        marker = f"marker-{secrets.token_hex(8)}"
        secret_chat = await alice.secret.start(bob_id)
        await alice.secret.send(secret_chat, marker)
        for device in (bob, bob2):
            got = await eventually(device, lambda g: marker in texts(g))
            assert texts(got) == [marker]  # once
            assert [c.peer_id for c in device.secret.chats()] == [alice.profile.user_id]
        # Bob answers from his laptop: Alice reads it, and so does his phone.
        await bob2.secret.send(None, "reply from b", user_id=alice.profile.user_id)
        assert texts(await eventually(alice, lambda g: "reply from b" in texts(g))) == [
            "reply from b"]
        assert "reply from b" in texts(await eventually(bob, lambda g: "reply from b"
                                                        in texts(g)))
        assert [m.text for m in await alice.secret.history(secret_chat)] == [
            marker, "reply from b"]

        # Region b goes away: Alice's sends over her sessions are acknowledged (a keeps b's
        # last word on Bob's devices) and wait (one envelope a device of Bob's), then
        # arrive once.
        b.node.kill()
        b.nats.kill()
        away = [f"away-{i}-{secrets.token_hex(4)}" for i in range(3)]
        for text in away:
            await alice.secret.send(secret_chat, text)
        # (they leave a's outbox for the stream, placed in a's cluster: it takes them while
        # b is away)
        b.nats.start()
        b.node.start()
        for n, old in enumerate((bob, bob2)):  # the same devices, their sessions kept
            await old.close()
            again = Client(b.node.url, Profile.load(tmp_path / ("bob", "bob2")[n]))
            await again.connect()
            await again.secret.open(PASSPHRASE)
            everyone.append(again)
            got = await eventually(again, lambda g: away[-1] in texts(g))
            await asyncio.sleep(1.0)  # anything delivered twice would land now
            got += await eventually(again, lambda g: True)
            assert texts(got) == away  # each once, in order
        assert await outbox_depth(a.database) == 0

        # Neither region kept or carried a secret text in the clear: not in its database,
        # not in its node's files or log, not in its nats-server's JetStream files; a plain
        # message (the control) is found, so the scan looks in the right places.
        control = f"CONTROL-{secrets.token_hex(8)}".encode()
        chat = await alice.chats.open_private(bob_id)
        await alice.messages.send(chat.id, control.decode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while control not in await database_text(b.database):
            assert loop.time() < deadline
            await asyncio.sleep(0.3)
        places = {"database a": await database_text(a.database),
                  "database b": await database_text(b.database)}
        for region in (a, b):
            for root in (region.node.data, region.nats.directory):
                for path in Path(root).rglob("*"):
                    if path.is_file():
                        places[str(path)] = path.read_bytes()
        assert {"raw in database a", "raw in database b"} <= set(found_in(control, places))
        for text in (marker, "reply from b", *away):
            assert found_in(text.encode(), places) == [], text
    finally:
        for client in everyone:
            await client.close()


async def test_forged_questions_and_envelopes_are_refused(regions: tuple[Region, Region],
                                                          phone, tmp_path) -> None:
    """Any client of the supercluster can publish: a region answers only for an asker the
    asking region homes, by its own rule, and takes an envelope only from a sender homed in
    the region whose stream carried it, tied to the device's owner."""
    a, b = regions
    alice, bob, bob2, bob_id = await tied(a, b, phone(), uk_phone(), tmp_path)
    try:
        assert alice.profile.user_id is not None
        alice_id, alice_device = alice.profile.user_id, alice.devices.device_id
        devices = [bob.devices.device_id, bob2.devices.device_id]
        stranger = alice_id + 100_000  # an id of region a tied to nobody in b

        async def keys(ask: KeysAsk) -> list[int]:
            reply = await nc.request("pigeon.region.b.keys", wire.encode(ask), timeout=5)
            return sorted(d.device_id for d in
                          msgspec.msgpack.decode(reply.data, type=KeysFound).devices)

        async def claim(ask: ClaimAsk) -> list[int]:
            reply = await nc.request("pigeon.region.b.claim", wire.encode(ask), timeout=5)
            return [k.device_id for k in
                    msgspec.msgpack.decode(reply.data, type=ClaimFound).keys]

        async with nats_client(b.nats.url) as nc:
            assert await keys(KeysAsk(origin="a", asker_id=alice_id, user_ids=[bob_id])) == \
                sorted(devices)
            # a vouching for someone homed in b, or for someone of its own not tied to Bob
            assert await keys(KeysAsk(origin="a", asker_id=bob_id, user_ids=[bob_id])) == []
            assert await keys(KeysAsk(origin="a", asker_id=stranger, user_ids=[bob_id])) == []
            assert await claim(ClaimAsk(origin="a", asker_id=bob_id, asker_device=alice_device,
                                        device_ids=devices)) == []
            assert await claim(ClaimAsk(origin="a", asker_id=alice_id,
                                        asker_device=devices[1], device_ids=devices)) == []
            assert await claim(ClaimAsk(origin="a", asker_id=stranger,
                                        asker_device=alice_device, device_ids=devices)) == []
            with pytest.raises(nats.errors.TimeoutError):  # rubbish: no answer
                await nc.request("pigeon.region.b.keys", b"\xc1", timeout=0.5)

            # Envelopes put on a's stream to b by someone other than region a's node.
            before = (await b.health())["regions"]["dropped"]  # type: ignore[index]
            js = nc.jetstream()
            forged = [CrossEnvelope(origin="a", sender=RemoteUser(id=sender, name="Mallory"),
                                    sender_device=alice_device, device_id=devices[0],
                                    ciphertext_type=0, ciphertext=b"forged", date=1.0)
                      for sender in (bob_id, stranger)]
            for envelope in forged:
                await js.publish("pigeon.xr.a.b", wire.encode(envelope))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (await b.health())["regions"]["dropped"] < before + 2:  # type: ignore[index]
            assert loop.time() < deadline
            await asyncio.sleep(0.3)
        # Nothing reached Bob's inbox: a delivered forgery would be reported undecryptable.
        await bob.secret.receive()
        assert [u for u in bob.take_updates() if isinstance(u, Undecryptable)] == []
        # ... and what Alice sends still does.
        await alice.secret.send(None, "still here", user_id=bob_id)
        assert texts(await eventually(bob, lambda g: "still here" in texts(g))) == ["still here"]
    finally:
        for client in (alice, bob, bob2):
            await client.close()


def test_the_cli_across_regions(regions: tuple[Region, Region], phone, tmp_path) -> None:
    """`pigeon secret start @bob`, `send --secret --to`, `receive`: the same commands as at
    home, Alice's profile on region a, Bob's on region b."""
    a, b = regions
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    tag = f"{os.getpid() % 100_000}{secrets.randbelow(1000)}"
    sign_up(a.node, alice, phone(), "Alice", f"alice_x{tag}")
    sign_up(b.node, bob, uk_phone(), "Bob", f"bob_x{tag}")
    ok(alice, "send", "--to", f"@bob_x{tag}", "hello")  # found in b by username
    ok(bob, "send", "--to", f"@alice_x{tag}", "hi")
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    env = {"PIGEON_PASSPHRASE_FILE": str(secret)}
    ok(bob, "secret", "list", env=env)  # Bob's device publishes its keys
    chat = ok(alice, "secret", "start", f"@bob_x{tag}", env=env).split()[2]
    assert chat.startswith("secret:")
    ok(alice, "send", "--secret", "--to", f"@bob_x{tag}", "the eagle lands", env=env)

    def secret_texts(profile: Path, want: str) -> list[str]:
        got: list[str] = []
        for _ in range(60):
            out = ok(profile, "receive", "--json", env=env)
            got += [o["text"] for o in map(json.loads, out.splitlines()) if o.get("secret")]
            if want in got:
                return got
        raise AssertionError(got)

    assert secret_texts(bob, "the eagle lands") == ["the eagle lands"]
    ok(bob, "send", "--secret", "--to", f"@alice_x{tag}", "received", env=env)
    assert secret_texts(alice, "received") == ["received"]
    assert "the eagle lands" in ok(bob, "history", f"@alice_x{tag}", "--secret", env=env)


async def test_an_end_to_end_encrypted_group_across_regions(regions: tuple[Region, Region],
                                                           phone, tmp_path) -> None:
    """A secret group of region a with Bob of region b: its Megolm keys travel as envelopes,
    its ciphertext as the group's messages (to b's replica, and from b forwarded to a);
    every device of both reads both ways, and no region holds the text."""
    a, b = regions
    alice, bob, bob2, bob_id = await tied(a, b, phone(), uk_phone(), tmp_path)
    try:
        group = await alice.secret_groups.create("Desk", [bob_id])
        assert group.id >> ID_SHIFT == 0 and group.secret
        posted = f"posted-{secrets.token_hex(8)}"
        await alice.secret_groups.send(group.id, posted)

        async def read(client: Client, want: list[str]) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 40
            while True:
                await client.inbox.receive()
                client.secret_groups.take_resolved()
                try:
                    got = [m.text for m in reversed(
                        await client.secret_groups.history(group.id))]
                except Forbidden:  # the replica is not in b yet
                    got = []
                if got == want:
                    return
                assert loop.time() < deadline, got
                await asyncio.sleep(0.3)

        await read(bob, [posted])
        replied = f"replied-{secrets.token_hex(8)}"
        await bob.secret_groups.send(group.id, replied)  # forwarded to a, as ciphertext
        for device in (alice, bob2):
            await read(device, [posted, replied])
        places = {"database a": await database_text(a.database),
                  "database b": await database_text(b.database)}
        for text in (posted, replied):
            assert found_in(text.encode(), places) == [], text
    finally:
        for client in (alice, bob, bob2):
            await client.close()


async def test_devices_verify_each_other_across_regions(regions: tuple[Region, Region],
                                                        phone, tmp_path) -> None:
    """Device verification (SAS): its steps are envelopes, so they cross as any other; both
    see the same short code and each trusts the other's device after."""
    a, b = regions
    alice, bob, bob2, bob_id = await tied(a, b, phone(), uk_phone(), tmp_path)
    try:
        assert alice.profile.user_id is not None
        pending = await alice.verifier.request(bob_id, bob.devices.device_id)
        accepted = await asyncio.wait_for(bob.verifier.wait_for_request(), 60)
        codes = await asyncio.wait_for(
            asyncio.gather(pending.short_code(), accepted.short_code()), 60)
        assert codes[0] == codes[1]
        await asyncio.gather(pending.confirm(), accepted.confirm())
        verified = await asyncio.wait_for(asyncio.gather(pending.finish(), accepted.finish()),
                                          60)
        assert [d.device_id for d in verified] == [bob.devices.device_id,
                                                  alice.devices.device_id]
        assert await alice.trust.is_verified(verified[0])
        assert await bob.trust.is_verified(verified[1])
    finally:
        for client in (alice, bob, bob2):
            await client.close()
