"""Groups spanning regions (issue 12, deliverable 6; docs/architecture.md, "Groups across
regions"): a group lives in its creator's region, the other region keeps a replica fed over
the cross-region stream, and what a member homed there does is forwarded to the group's
region. Two regions as in test_regions.py (each its own PostgreSQL database, nats-server and
node, a gateway between them): Alice and Carol in a, Bob and Dan in b."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import os
import time
from pathlib import Path

import aiohttp
import msgspec
import nats
import pytest
from PIL import Image
from nats_support import nats_client
from test_regions_events import from_other, next_of, until

from pigeon.client import Client
from pigeon.protocol import methods as m
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.region_groups import GroupAnswer, GroupCall, GroupSend
from pigeon.protocol.regions import (
    BlobAsk,
    BlobPart,
    CrossFile,
    CrossGroup,
    GroupMember,
    RemoteUser,
    encode,
)
from pigeon.protocol.updates import DeleteMessages, EditMessage, NewMessage, ReadOutbox
from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region

pytestmark = pytest.mark.slow

_uk = itertools.count(1)


def uk_phone() -> str:
    """A fresh number homed in region b (+44)."""
    return f"+447402{os.getpid() % 1000:03d}{next(_uk):03d}"


async def b_person(b: Region, name: str) -> tuple[Client, str]:
    """Someone homed in b whom anyone may find by number and add to a group."""
    number = uk_phone()
    client = await login(b.node, number, name)
    await client.account.set_phone_discoverable(True)
    await client.account.set_who_can_add("everyone")
    return client, number


async def shown(client: Client, chat_id: int) -> list[tuple[int, int, str]]:
    """The group's history as this member sees it, oldest first: (id, sender, text)."""
    return [(msg.id, msg.sender_id, msg.text)
            for msg in reversed(await client.messages.history(chat_id, limit=1000))]


async def logged(client: Client, chat_id: int) -> list[str]:
    """The group's new messages in this member's update log (what get_difference pages)."""
    diff = await client.call("updates.get_difference", m.GetDifference(pts=0))
    return [u.message.text for u in diff.updates
            if isinstance(u, NewMessage) and u.message.chat_id == chat_id]


async def code_of(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except PigeonError as exc:
        return exc.code
    return "done"


async def test_a_group_spans_two_regions(regions: tuple[Region, Region], phone) -> None:
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    carol = await login(a.node, phone(), "Carol")
    bob, bob_phone = await b_person(b, "Bob")
    bob_again = await login(b.node, bob_phone, "Bob")  # Bob's second device
    dan, dan_phone = await b_person(b, "Dan")
    clients = [alice, carol, bob, bob_again, dan]
    try:
        bob_id, dan_id = bob.profile.user_id or 0, dan.profile.user_id or 0
        assert (await alice.account.resolve_phone(bob_phone)).id == bob_id
        group = await alice.chats.create_group("across", [carol.profile.user_id or 0, bob_id])
        # Bob's region keeps the group under the same id, with every member.
        await until(lambda: _member_count(bob, group.id, 3))

        first = await alice.messages.send(group.id, "a: hello")
        got = await next_of(bob, NewMessage, where=from_other(bob, group.id))
        assert (got.message.id, got.message.text) == (first.message.id, "a: hello")
        # Bob writes through his own region, which forwards to a and answers after a did.
        reply = await bob.messages.send(group.id, "b: hi", reply_to=first.message.id)
        assert reply.message.id == first.message.id + 1 and reply.pts == 0
        got = await next_of(alice, NewMessage, where=from_other(alice, group.id))
        assert (got.message.text, got.message.reply_to) == ("b: hi", first.message.id)
        # Both ways at once: the group's region orders them; every copy agrees.
        await asyncio.gather(*(c.messages.send(group.id, f"{n} {i}")
                               for i in range(4) for c, n in ((alice, "a"), (bob, "b"))))
        # A device's pipelined sends keep their order through the forwarding.
        await asyncio.gather(*(bob.messages.send(group.id, f"b seq {i}") for i in range(6)))
        want = await shown(alice, group.id)
        assert len(want) == 16
        assert [t for _, _, t in want if t.startswith("b seq")] == [f"b seq {i}" for i in range(6)]
        for member in (carol, bob, bob_again):
            await until(lambda member=member: _has(member, group.id, 16))
            assert await shown(member, group.id) == want
        texts = [text for _, _, text in want]
        for member in (alice, carol, bob, bob_again):
            assert await logged(member, group.id) == texts  # each once, in the group's order
        # Read marks reach the authors in the other region (through the group's region).
        asked = (await alice.messages.send(group.id, "a: read this?")).message.id
        await until(lambda: _has(bob, group.id, 17))
        await bob.messages.read(group.id, asked)
        await next_of(alice, ReadOutbox, where=lambda u: u.chat_id == group.id
                      and u.max_id == asked)
        answered = (await bob.messages.send(group.id, "b: read that?")).message.id
        await until(lambda: _has(carol, group.id, 18))
        await carol.messages.read(group.id, answered)
        await next_of(bob, ReadOutbox, where=lambda u: u.chat_id == group.id
                      and u.max_id == answered)

        # Edits and deletes, by the group's region's rules.
        assert await code_of(bob.messages.edit(group.id, first.message.id, "mine?")) == \
            "NOT_AUTHOR"
        await bob.messages.edit(group.id, reply.message.id, "b: hi (edited)")
        edit = await next_of(alice, EditMessage, where=lambda u: u.message.id == reply.message.id)
        assert edit.message.text == "b: hi (edited)"
        await alice.messages.delete(group.id, [first.message.id], for_everyone=True)
        await next_of(bob, DeleteMessages, where=lambda u: first.message.id in u.message_ids)
        assert [t for _, _, t in await shown(bob, group.id)][:1] == ["b: hi (edited)"]

        # Membership: Bob may not add anyone until Alice makes him an admin.
        assert await code_of(bob.chats.add_members(group.id, [dan_id])) == "NOT_ADMIN"
        await alice.chats.set_role(group.id, bob_id, "admin")
        await until(lambda: _role(bob, group.id, "admin"))
        await bob.chats.add_members(group.id, [dan_id])  # Dan is made known in a by the call
        await until(lambda: _member_count(dan, group.id, 4))
        await dan.messages.send(group.id, "d: joined")
        got = await next_of(carol, NewMessage, where=lambda u: u.message.sender_id == dan_id)
        assert got.message.text == "d: joined"

        # Bob is removed: he cannot send, and gets nothing after.
        await alice.chats.remove_member(group.id, bob_id)
        assert await code_of(bob.messages.send(group.id, "still here?")) == "NOT_A_MEMBER"
        await until(lambda: _gone(bob, group.id))
        await alice.messages.send(group.id, "a: after bob")
        got = await next_of(dan, NewMessage, where=from_other(dan, group.id))
        assert got.message.text == "a: after bob"
        assert "a: after bob" not in await logged(bob, group.id)
        assert "a: after bob" not in await logged(bob_again, group.id)
        # Dan leaves, through his region.
        await dan.chats.leave(group.id)
        await until(lambda: _member_count(alice, group.id, 2))

        # Operators see the forwarded calls: sent from b, done (or refused) by a.
        calls_b = (await b.health())["regions"]["group_calls"]
        calls_a = (await a.health())["regions"]["group_calls"]
        assert calls_b["forwarded"] >= 15 and calls_a["answered"] >= 13
        assert calls_a["refused"] >= 3  # NOT_AUTHOR, NOT_ADMIN, NOT_A_MEMBER
        async with aiohttp.ClientSession() as http, \
                http.get(f"{a.node.operator_url}/metrics") as response:
            assert 'pigeon_region_group_calls_total{what="answered"}' in await response.text()
        # (end-to-end encrypted groups across regions: test_regions_secret.py)
        # A forward into a group of another region carries its header as data.
        own = await dan.chats.create_group("b's", [])  # Dan's own group lives in b
        assert own.id >> 40 == 1
        original = await dan.messages.send(own.id, "worth passing on")
        again = await alice.chats.create_group("again", [dan_id])
        await until(lambda: _member_count(dan, again.id, 2))
        await dan.messages.forward(own.id, original.message.id, again.id)
        got = await next_of(alice, NewMessage, where=from_other(alice, again.id))
        assert got.message.text == "worth passing on" and got.message.fwd_from is not None
        assert (got.message.fwd_from.sender_id, got.message.fwd_from.chat_id,
                got.message.fwd_from.message_id) == (dan_id, own.id, original.message.id)
    finally:
        for client in clients:
            await client.close()


async def test_junk_and_forged_group_calls_are_refused(regions: tuple[Region, Region],
                                                       phone) -> None:
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    bob, bob_phone = await b_person(b, "Bob")
    try:
        bob_id = (await alice.account.resolve_phone(bob_phone)).id
        group = await alice.chats.create_group("guarded", [bob_id])
        async with nats_client(a.nats.url) as nc:
            for junk in (b"\xc1", b"\x80", encode(GroupSend(chat_id=group.id, random_id=1))):
                with pytest.raises(nats.errors.TimeoutError):  # no answer, nothing done
                    await nc.request("pigeon.region.a.group", junk, timeout=0.5)

            async def ask(call: GroupCall) -> GroupAnswer:
                reply = await nc.request("pigeon.region.a.group", encode(call), timeout=5)
                return msgspec.msgpack.decode(reply.data, type=GroupAnswer)

            send = encode(GroupSend(chat_id=group.id, random_id=2, text="forged"))
            # b vouches only for its own people: not for Alice, homed in a
            forged = await ask(GroupCall(origin="b", actor_id=alice.profile.user_id or 0,
                                         method="messages.send", params=send))
            assert forged.code == "INVALID_ARGUMENT"
            # someone of b who is not a member is refused by the group's rules
            stranger = await ask(GroupCall(origin="b", actor_id=(1 << 40) + 999_999,
                                           method="messages.send", params=send))
            assert stranger.code == "NOT_A_MEMBER"
            # a method a's version does not know: answered, typed (not left to time out)
            newer = await ask(GroupCall(origin="b", actor_id=bob_id, method="messages.pin",
                                        params=send))
            assert newer.code == "NOT_SUPPORTED_ACROSS_REGIONS"
            # a private chat is no group: its copies cross as messages, by their own rules
            private = await alice.chats.open_private(bob_id)
            into_private = await ask(GroupCall(
                origin="b", actor_id=bob_id, method="messages.send",
                params=encode(GroupSend(chat_id=private.id, random_id=3, text="forged"))))
            assert into_private.code == "NOT_SUPPORTED_ACROSS_REGIONS"
        assert await alice.messages.history(private.id) == []
        assert [msg.text for msg in await alice.messages.history(group.id)] == []
        assert (await a.health())["regions"]["dropped"] >= 3
        # Malformed messages of the group kinds on the stream: logged and skipped by b, and
        # what comes after them still arrives.
        dropped = (await b.health())["regions"]["dropped"]
        async with nats_client(a.nats.url) as nc:
            for junk in ({"type": "group", "origin": "a"},
                         {"type": "group_message", "origin": "a", "recipient_id": group.id,
                          "message_id": -1}):
                await nc.jetstream().publish("pigeon.xr.a.b", msgspec.msgpack.encode(junk))
            # a's group with an id of b's own range (one made before ids were ranged): b
            # makes no replica of it, which b's rules would then write as b's own chat
            squatter = (1 << 40) + 999_777
            bob_row = RemoteUser(id=bob_id, name="Bob")
            await nc.jetstream().publish("pigeon.xr.a.b", encode(CrossGroup(
                origin="a", sender=bob_row, recipient_id=squatter, date=0.0, kind="group",
                title="old", created=0.0, member_count=1, last_message_id=0, reset=True,
                joined=[GroupMember(user=bob_row, home="b", role="owner", joined=0.0,
                                    history_from=0)])))
        await alice.messages.send(group.id, "after the junk")
        got = await next_of(bob, NewMessage, where=from_other(bob, group.id))
        assert got.message.text == "after the junk"
        assert (await b.health())["regions"]["dropped"] >= dropped + 3
        assert await code_of(bob.chats.get(squatter)) == "NOT_A_MEMBER"
    finally:
        await alice.close()
        await bob.close()


async def test_a_file_in_a_group_is_served_by_each_region(
        regions: tuple[Region, Region], phone, tmp_path: Path) -> None:
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    bob, bob_phone = await b_person(b, "Bob")
    try:
        group = await alice.chats.create_group("files", [
            (await alice.account.resolve_phone(bob_phone)).id])
        document = os.urandom(300_000)  # two chunks of at most 256 KiB
        (tmp_path / "d.bin").write_bytes(document)
        doc = await alice.files.upload(tmp_path / "d.bin", kind="document")
        await alice.messages.send(group.id, "the minutes", media=doc.file_id)
        got = await next_of(bob, NewMessage, where=from_other(bob, group.id))
        assert got.message.media is not None and got.message.text == "the minutes"
        fetched = await bob.files.download(got.message.media.file_id, tmp_path / "b.bin")
        assert fetched.read_bytes() == document
    finally:
        await alice.close()
        await bob.close()


async def test_a_file_and_a_sticker_sent_into_a_group_from_another_region(
        regions: tuple[Region, Region], phone, tmp_path: Path) -> None:
    """Bob (b) sends a photo and a sticker into Alice's group (a): a fetches their bytes from
    b, and every member, in either region, downloads the same bytes."""
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    carol = await login(a.node, phone(), "Carol")
    bob, bob_phone = await b_person(b, "Bob")
    dan, _ = await b_person(b, "Dan")
    bob_again = await login(b.node, bob_phone, "Bob")  # Bob's second device
    clients = [alice, carol, bob, dan, bob_again]
    try:
        group = await alice.chats.create_group("pictures", [
            (await alice.account.resolve_phone(bob_phone)).id, carol.profile.user_id])
        await until(lambda: _has_chat(bob_again, group.id))
        jpeg = io.BytesIO()
        Image.effect_noise((640, 480), 64).convert("RGB").save(jpeg, "JPEG")
        (tmp_path / "p.jpg").write_bytes(jpeg.getvalue())
        photo = await bob.files.upload(tmp_path / "p.jpg", kind="photo")
        sent = await bob.messages.send(group.id, "a photo", media=photo.file_id)
        assert sent.message.media is not None and sent.message.media.file_id == photo.file_id
        mine = (await bob.files.download(photo.file_id, tmp_path / "mine.jpg")).read_bytes()

        def bobs(u: NewMessage) -> bool:
            return u.message.chat_id == group.id and u.message.sender_id == bob.profile.user_id

        for n, member in enumerate((alice, carol, bob_again)):
            got = await next_of(member, NewMessage, where=bobs)
            assert got.message.text == "a photo" and got.message.media is not None
            assert got.message.media.thumb == photo.thumb
            path = await member.files.download(got.message.media.file_id, tmp_path / f"{n}")
            assert path.read_bytes() == mine
            if photo.thumb is not None:
                await member.files.download(photo.thumb, tmp_path / f"t{n}")

        png = io.BytesIO()
        Image.new("RGBA", (300, 200), (250, 200, 0, 255)).save(png, "PNG")
        owls = f"owls_{os.getpid()}_{next(_uk)}"
        await bob.stickers.create(owls, "Owls")
        made = await bob.stickers.add(owls, png.getvalue(), ["🦉"])
        await bob.stickers.send(group.id, owls, 1)
        for member in (alice, carol, bob_again):
            stuck = await next_of(member, NewMessage, where=bobs)
            assert stuck.message.sticker is not None
            assert stuck.message.sticker.file_id == made.stickers[0].file_id
        async with aiohttp.ClientSession() as http:
            images = []
            for node in (a.node, b.node):
                async with http.get(f"{node.url}/stickers/files/"
                                    f"{made.stickers[0].file_id}.webp") as response:
                    assert response.status == 200
                    images.append(await response.read())
            assert images[0] == images[1]

        # No open blob oracle: b lends a blob only on the subject of the call that sends it;
        # a call naming b's shared subject is refused; a file not lent is not to be had.
        secret = os.urandom(2000)
        (tmp_path / "s.bin").write_bytes(secret)
        kept = await bob.files.upload(tmp_path / "s.bin", kind="document")
        ask = BlobAsk(digest=hashlib.sha256(secret).hexdigest(), offset=0, length=2000)
        async with nats_client(b.nats.url) as nc:
            reply = await nc.request("pigeon.region.b.blob", encode(ask), timeout=5)
            assert not msgspec.msgpack.decode(reply.data, type=BlobPart).found
        async with nats_client(a.nats.url) as nc:
            rows = [CrossFile(id=kept.file_id, digest=ask.digest, size=2000)]
            for subject in ("pigeon.region.b.blob", "pigeon.region.a.blob.x"):
                forged = encode(GroupSend(chat_id=group.id, random_id=7, files=rows,
                                          blobs_from=subject))
                reply = await nc.request("pigeon.region.a.group", encode(GroupCall(
                    origin="b", actor_id=bob.profile.user_id or 0, method="messages.send",
                    params=forged)), timeout=10)
                answer = msgspec.msgpack.decode(reply.data, type=GroupAnswer)
                assert answer.code == "INVALID_ARGUMENT"
        # A file that is not Bob's to send: typed, and nothing reaches the group.
        (tmp_path / "dan.bin").write_bytes(os.urandom(1000))
        dans = await dan.files.upload(tmp_path / "dan.bin", kind="document")
        assert await code_of(bob.messages.send(group.id, "", media=dans.file_id)) == \
            "FILE_NOT_FOUND"
        assert [t for _, _, t in await shown(alice, group.id)][-2:] == ["a photo", ""]
    finally:
        for client in clients:
            await client.close()


async def _has_chat(client: Client, chat_id: int) -> bool:
    return await code_of(client.chats.get(chat_id)) == "done"


async def test_either_region_away(regions: tuple[Region, Region], phone) -> None:
    a, b = regions
    alice_phone = phone()
    alice = await login(a.node, alice_phone, "Alice")
    bob, bob_phone = await b_person(b, "Bob")
    dan, _ = await b_person(b, "Dan")
    clients = [alice, bob, dan]
    try:
        bob_id, dan_id = bob.profile.user_id or 0, dan.profile.user_id or 0
        await alice.account.resolve_phone(bob_phone)
        group = await alice.chats.create_group("weather", [bob_id])
        await alice.messages.send(group.id, "before")
        await next_of(bob, NewMessage, where=from_other(bob, group.id))
        with_dan = await bob.chats.open_private(dan_id)

        # Bob's send is acknowledged once a committed it; a is killed at once, perhaps
        # before relaying it back to b: it is not lost.
        await bob.messages.send(group.id, "acked by a")
        # The group's region goes away (kill -9 of its node and its nats-server).
        a.node.kill()
        a.nats.kill()
        started = time.monotonic()
        assert await code_of(bob.messages.send(group.id, "while a is away", random_id=99)) \
            == "REGION_UNAVAILABLE"
        assert time.monotonic() - started < 10
        # ... b's people keep chatting, and the replica stays readable.
        await bob.messages.send(with_dan.id, "a is away")
        got = await next_of(dan, NewMessage, where=from_other(dan))
        assert got.message.text == "a is away"
        assert [t for _, _, t in await shown(bob, group.id)] in (["before"],
                                                                  ["before", "acked by a"])
        a.nats.start()
        a.node.start()
        await alice.close()
        alice = clients[0] = await login(a.node, alice_phone, "Alice")

        async def sent_again() -> bool:  # the same random_id: written once however often
            return await code_of(bob.messages.send(group.id, "while a is away",
                                                   random_id=99)) == "done"
        await until(sent_again, 60)
        await bob.messages.send(group.id, "while a is away", random_id=99)
        await until(lambda: _has(alice, group.id, 3))

        # Now Bob's region goes away: a keeps serving the group, and b gets it all after.
        await bob.close()
        await dan.close()
        b.node.kill()
        b.nats.kill()
        away = [f"away {i}" for i in range(10)]
        for text in away:
            await asyncio.wait_for(alice.messages.send(group.id, text), 10)
        b.nats.start()
        b.node.start()
        bob = clients[1] = await login(b.node, bob_phone, "Bob")
        want = ["before", "acked by a", "while a is away", *away]
        await until(lambda: _has(bob, group.id, len(want)), 60)
        await asyncio.sleep(1.0)  # anything delivered twice would land now
        assert await shown(bob, group.id) == await shown(alice, group.id)
        assert [t for _, _, t in await shown(bob, group.id)] == want
        assert await logged(bob, group.id) == want
    finally:
        for client in clients:
            await client.close()


async def _member_count(client: Client, chat_id: int, count: int) -> bool:
    try:
        return (await client.chats.get(chat_id)).member_count == count
    except PigeonError:
        return False


async def _role(client: Client, chat_id: int, role: str) -> bool:
    return (await client.chats.get(chat_id)).role == role


async def _gone(client: Client, chat_id: int) -> bool:
    return await code_of(client.chats.get(chat_id)) == "NOT_A_MEMBER"


async def _has(client: Client, chat_id: int, count: int) -> bool:
    return len(await client.messages.history(chat_id, limit=1000)) >= count


async def test_a_very_large_group_spans_two_regions(regions: tuple[Region, Region],
                                                    phone) -> None:
    # A supergroup's messages go once onto the chat's own stream: each region's own.
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    bob, bob_phone = await b_person(b, "Bob")
    try:
        bob_id = (await alice.account.resolve_phone(bob_phone)).id
        group = await alice.chats.create_group("crowd", [bob_id], large=True)
        assert group.kind == "supergroup"
        await until(lambda: _member_count(bob, group.id, 2))
        await alice.messages.send(group.id, "a: to the crowd")
        got = await next_of(bob, NewMessage, where=from_other(bob, group.id))
        assert got.message.text == "a: to the crowd"
        await bob.messages.send(group.id, "b: from the crowd")
        got = await next_of(alice, NewMessage, where=from_other(alice, group.id))
        assert got.message.text == "b: from the crowd"
        await until(lambda: _has(bob, group.id, 2))
        assert await shown(bob, group.id) == await shown(alice, group.id)
    finally:
        await alice.close()
        await bob.close()
