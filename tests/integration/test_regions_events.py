"""More than messages across regions (issue 12, deliverable 6): in a private chat whose sides
live in different regions, forwards, replies, files, edits, deletes for everyone and read
marks cross too, each once and in the order they happened, through a region being away
(kill -9 of its node and nats-server, then a restart; a file's message waits while its
region's node is away); junk of the new kinds on the subject is dropped. Two
regions as in test_regions.py (each its own PostgreSQL database, nats-server and node, a
gateway between them): Alice and Carol in a, Bob in b."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import nats
import pytest
from nats_support import nats_client
from PIL import Image

from pigeon.client import Client
from pigeon.protocol import methods as m
from pigeon.protocol.regions import BlobAsk, BlobPart, encode
from pigeon.protocol.updates import DeleteMessages, EditMessage, NewMessage, ReadOutbox
from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region
from pigeon.testing_regions import outbox_depth

pytestmark = pytest.mark.slow

_uk = itertools.count(500)
U = TypeVar("U")


def uk_phone() -> str:
    """A fresh number homed in region b (+44)."""
    return f"+447401{os.getpid() % 1000:03d}{next(_uk):03d}"


async def next_of(client: Client, kind: type[U], timeout: float = 45.0,
                  where: Callable[[U], bool] = lambda _: True) -> U:
    """The next update of ``kind`` (matching ``where``) this client is pushed."""
    async def wait() -> U:
        async for update in client.updates():
            if isinstance(update, kind) and where(update):
                return update
        raise AssertionError("updates ended")
    return await asyncio.wait_for(wait(), timeout)


def from_other(client: Client, chat_id: int | None = None) -> Callable[[NewMessage], bool]:
    return lambda u: (u.message.sender_id != client.profile.user_id
                      and chat_id in (None, u.message.chat_id))


async def until(what: Callable[[], Awaitable[bool]], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not await what():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.3)


async def texts(client: Client, chat_id: int) -> list[str]:
    return [msg.text for msg in reversed(await client.messages.history(chat_id, limit=1000))]


async def pair(a: Region, b: Region, phone: Callable[[], str],
               alice_phone: str | None = None) -> tuple[Client, Client, int, int, str]:
    """Alice (a) and Bob (b), each with their copy of their chat, one message in it; and
    Bob's number."""
    bob_phone = uk_phone()
    alice = await login(a.node, alice_phone or phone(), "Alice")
    bob = await login(b.node, bob_phone, "Bob")
    await bob.account.set_phone_discoverable(True)
    to_bob = await alice.chats.open_private((await alice.account.resolve_phone(bob_phone)).id)
    await alice.messages.send(to_bob.id, "hello")
    first = await next_of(bob, NewMessage, where=from_other(bob))
    return alice, bob, to_bob.id, first.message.chat_id, bob_phone


async def test_edits_deletes_reads_and_forwards_cross_once_in_order(
        regions: tuple[Region, Region], phone: Callable[[], str]) -> None:
    a, b = regions
    alice, bob, alices, bobs, _ = await pair(a, b, phone)
    carol = await login(a.node, phone(), "Carol")
    clients = [alice, bob, carol]
    try:
        # A forward: its header travels as data (the original's sender is Carol).
        with_carol = await carol.chats.open_private(alice.profile.user_id or 0)
        said = await carol.messages.send(with_carol.id, "carol said")
        await alice.messages.forward(with_carol.id, said.message.id, alices)
        got = await next_of(bob, NewMessage, where=from_other(bob))
        assert got.message.text == "carol said" and got.message.fwd_from is not None
        assert got.message.fwd_from.sender_id == carol.profile.user_id
        # An edit of Alice's first message, by its id in a's copy; Bob sees it in b's.
        await alice.messages.edit(alices, 1, "hello, edited")
        edited = await next_of(bob, EditMessage)
        assert (edited.message.chat_id, edited.message.id) == (bobs, 1)
        assert edited.message.text == "hello, edited"
        # Bob writes, edits and Alice reads: Bob hears ReadOutbox in b for his own message.
        mine = await bob.messages.send(bobs, "from bob")
        theirs = await next_of(alice, NewMessage, where=from_other(alice, alices))
        await bob.messages.edit(bobs, mine.message.id, "from bob, edited")
        bobs_edit = await next_of(alice, EditMessage,
                                  where=lambda u: u.message.id == theirs.message.id)
        assert bobs_edit.message.text == "from bob, edited"
        await alice.messages.read(alices, theirs.message.id)
        told = await next_of(bob, ReadOutbox, where=lambda u: u.chat_id == bobs)
        assert told.max_id == mine.message.id
        # ... and the other way: Bob reads up to Alice's newest (sending read the rest).
        extra = await alice.messages.send(alices, "read me")
        seen = await next_of(bob, NewMessage, where=from_other(bob))
        await bob.messages.read(bobs, seen.message.id)
        told = await next_of(alice, ReadOutbox, where=lambda u: u.max_id == extra.message.id)
        assert told.chat_id == alices
        # Deletes for everyone, both ways, of one's own and of the other's message.
        await alice.messages.delete(alices, [extra.message.id], for_everyone=True)
        gone = await next_of(bob, DeleteMessages)
        assert (gone.chat_id, gone.message_ids) == (bobs, [seen.message.id])
        await bob.messages.delete(bobs, [1], for_everyone=True)  # Alice's "hello"
        gone = await next_of(alice, DeleteMessages, where=lambda u: u.message_ids == [1])
        assert gone.chat_id == alices
        # A reply names the message it answers by its id in each copy.
        await alice.messages.send(alices, "last", reply_to=theirs.message.id)
        last = await next_of(bob, NewMessage, where=from_other(bob))
        assert last.message.reply_to == mine.message.id
        want = ["carol said", "from bob, edited", "last"]
        assert await texts(alice, alices) == want
        assert await texts(bob, bobs) == want
        # Each crossed once: Bob's update stream holds one of each.
        diff = await bob.call("updates.get_difference", m.GetDifference(pts=0))
        kinds = [type(u).__name__ for u in diff.updates
                 if getattr(u, "chat_id", None) == bobs
                 or getattr(getattr(u, "message", None), "chat_id", None) == bobs]
        assert kinds.count("EditMessage") == 2 and kinds.count("DeleteMessages") == 2
        assert kinds.count("NewMessage") == 5
    finally:
        for client in clients:
            await client.close()


async def test_events_wait_for_a_region_away_and_junk_is_dropped(
        regions: tuple[Region, Region], phone: Callable[[], str]) -> None:
    a, b = regions
    alice_phone = phone()
    alice, bob, alices, bobs, bob_phone = await pair(a, b, phone, alice_phone)
    bob_id = bob.profile.user_id
    mine = await bob.messages.send(bobs, "bob's")
    await next_of(alice, NewMessage, where=from_other(alice, alices))
    await bob.close()
    clients = [alice]
    try:
        b.node.kill()
        b.nats.kill()
        # While b is away: a read, sends, edits, a delete for everyone, all acknowledged.
        await asyncio.wait_for(alice.messages.read(alices, mine.message.id), 10)
        sent = [(await asyncio.wait_for(alice.messages.send(alices, f"away {i}"), 10)).message
                for i in range(4)]
        await asyncio.wait_for(alice.messages.edit(alices, sent[0].id, "away 0, edited"), 10)
        await asyncio.wait_for(alice.messages.edit(alices, sent[0].id, "away 0, again"), 10)
        await asyncio.wait_for(alice.messages.delete(alices, [sent[1].id], True), 10)
        # Junk of the new kinds on the subject: malformed, or naming no message there.
        async with nats_client(a.nats.url) as nc:
            js = nc.jetstream()
            alice_row = {"id": alice.profile.user_id, "name": "Alice"}
            for junk in ({"type": "edit", "origin": "a"},
                         {"type": "delete", "origin": "a", "sender": alice_row,
                          "recipient_id": bob_id, "messages": [], "date": 1.0},
                         {"type": "read", "origin": "a", "sender": alice_row,
                          "recipient_id": bob_id, "random_id": 12345, "date": 1.0},
                         {"type": "edit", "origin": "a", "sender": alice_row,
                          "recipient_id": bob_id, "random_id": 1, "text": "x" * 5000,
                          "date": 1.0}):
                await js.publish("pigeon.xr.a.b", msgspec.msgpack.encode(junk))
        await asyncio.wait_for(alice.messages.send(alices, "after junk"), 10)
        # a's node is killed too, with whatever it has not relayed yet.
        a.node.kill()
        a.node.start()
        b.nats.start()
        b.node.start()
        bob = await login(b.node, bob_phone, "Bob")
        clients.append(bob)
        want = ["hello", "bob's", "away 0, again", "away 2", "away 3", "after junk"]

        async def arrived() -> bool:
            return await texts(bob, bobs) == want
        await until(arrived)
        await asyncio.sleep(1.0)  # anything applied twice would land now
        assert await texts(bob, bobs) == want
        diff = await bob.call("updates.get_difference", m.GetDifference(pts=0))
        edits = [u.message.text for u in diff.updates
                 if isinstance(u, EditMessage) and u.message.chat_id == bobs]
        # each once (an edit's update refers to the message row: both read its last text)
        assert edits == ["away 0, again"] * 2
        deletes = [u.message_ids for u in diff.updates
                   if isinstance(u, DeleteMessages) and u.chat_id == bobs]
        assert len(deletes) == 1 and len(deletes[0]) == 1
        reads = [u.max_id for u in diff.updates
                 if isinstance(u, ReadOutbox) and u.chat_id == bobs]
        assert reads == [mine.message.id]  # Alice's read reached Bob's region, once
        health: Any = await b.health()
        assert health["regions"]["dropped"] >= 4  # since b's node started again
        # The chat goes on both ways.
        await bob.messages.send(bobs, "back")
        back = await next_of(alice, NewMessage, where=from_other(alice, alices))
        assert back.message.text == "back"
        read_me = (await alice.messages.send(alices, "read me")).message
        seen = await next_of(bob, NewMessage, where=lambda u: u.message.text == "read me")

        # Now region a goes away (node and nats-server, kill -9), and Bob reads, edits,
        # deletes and writes; a gets each once, in order, when it returns.
        await alice.close()
        a.node.kill()
        a.nats.kill()
        await asyncio.wait_for(bob.messages.read(bobs, seen.message.id), 10)
        mine_back = (await bob.messages.history(bobs, limit=2))[1]
        assert mine_back.text == "back"
        await asyncio.wait_for(bob.messages.edit(bobs, mine_back.id, "back, edited"), 10)
        away_2 = [m.id for m in await bob.messages.history(bobs, limit=100)
                  if m.text == "away 2"]
        await asyncio.wait_for(bob.messages.delete(bobs, away_2, True), 10)
        await asyncio.wait_for(bob.messages.send(bobs, "while a was away"), 10)
        a.nats.start()
        a.node.start()
        alice = await login(a.node, alice_phone, "Alice")
        clients.append(alice)
        want_a = ["hello", "bob's", "away 0, again", "away 3", "after junk", "back, edited",
                  "read me", "while a was away"]

        async def came_back() -> bool:
            return await texts(alice, alices) == want_a
        await until(came_back)
        await asyncio.sleep(1.0)
        assert await texts(alice, alices) == want_a
        diff = await alice.call("updates.get_difference", m.GetDifference(pts=0))
        told = [u.max_id for u in diff.updates
                if isinstance(u, ReadOutbox) and u.chat_id == alices]
        assert told.count(read_me.id) == 1  # Bob's read, once
        assert [u.message.text for u in diff.updates if isinstance(u, EditMessage)
                and u.message.chat_id == alices and u.message.sender_id == bob_id] == [
            "back, edited"]
    finally:
        for client in clients:
            await client.close()



def photo_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 90, 200)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_files_cross_with_their_messages_and_wait_for_their_region(
        regions: tuple[Region, Region], phone: Callable[[], str], tmp_path: Path) -> None:
    a, b = regions
    alice, bob, alices, bobs, bob_phone = await pair(a, b, phone)
    clients = [alice, bob]
    try:
        # A photo (the server makes a thumbnail) and a document of several chunks.
        (tmp_path / "p.jpg").write_bytes(photo_bytes())
        document = os.urandom(600_000)  # 3 chunks of at most 256 KiB
        (tmp_path / "d.bin").write_bytes(document)
        photo = await alice.files.upload(tmp_path / "p.jpg")
        doc = await alice.files.upload(tmp_path / "d.bin", kind="document")
        assert photo.thumb is not None
        await alice.messages.send(alices, "a photo", media=photo.file_id)
        await alice.messages.send(alices, "", media=doc.file_id)
        got = [await next_of(bob, NewMessage, where=from_other(bob)) for _ in range(2)]
        assert [g.message.text for g in got] == ["a photo", ""]
        assert got[0].message.media is not None and got[1].message.media is not None
        # Bob's region serves the bytes itself, the same bytes.
        mine = await alice.files.download(photo.file_id, tmp_path / "mine.jpg")
        theirs = await bob.files.download(got[0].message.media.file_id, tmp_path / "b.jpg")
        assert theirs.read_bytes() == mine.read_bytes()
        assert got[0].message.media.thumb == photo.thumb
        await bob.files.download(photo.thumb, tmp_path / "b-thumb.jpg")
        fetched = await bob.files.download(got[1].message.media.file_id, tmp_path / "b.bin")
        assert fetched.read_bytes() == document
        # A sticker: its file is fetched too and served in b to anyone, as sticker files are.
        png = io.BytesIO()
        Image.new("RGBA", (300, 200), (250, 200, 0, 255)).save(png, "PNG")
        owls = f"owls_{os.getpid()}"
        await alice.stickers.create(owls, "Owls")
        made = await alice.stickers.add(owls, png.getvalue(), ["🦉"])
        await alice.stickers.send(alices, owls, 1)
        stuck = await next_of(bob, NewMessage, where=from_other(bob))
        assert stuck.message.sticker is not None
        assert stuck.message.sticker.file_id == made.stickers[0].file_id
        async with aiohttp.ClientSession() as http:
            images = []
            for node in (a.node, b.node):
                async with http.get(f"{node.url}/stickers/files/"
                                    f"{stuck.message.sticker.file_id}.webp") as response:
                    assert response.status == 200
                    images.append(await response.read())
            assert images[0] == images[1]
        # A stranger in b may not read a file.
        eve = await login(b.node, uk_phone(), "Eve")
        clients.append(eve)
        with pytest.raises(Exception) as hidden:
            await eve.files.download(doc.file_id, tmp_path / "eve.bin")
        assert getattr(hidden.value, "code", "") == "FILE_NOT_FOUND"

        # Only blobs sent across regions are handed out; junk asks get no answer.
        async with nats_client(b.nats.url) as nc:
            sha = "ab" * 32
            reply = await nc.request("pigeon.region.a.blob", encode(BlobAsk(
                digest=sha, offset=0, length=10)), timeout=5)
            assert msgspec.msgpack.decode(reply.data, type=BlobPart).found is False
            with pytest.raises(nats.errors.TimeoutError):
                await nc.request("pigeon.region.a.blob", b"\x81\xa6digest\xa1x", timeout=0.5)
            # A message whose file its region does not have is skipped, not fatal.
            junk = {"type": "message", "origin": "a",
                    "sender": {"id": alice.profile.user_id, "name": "Alice"},
                    "recipient_id": bob.profile.user_id, "random_id": 4242, "text": "junk",
                    "date": 1.0, "media": {"kind": "document", "file_id": "x" * 22},
                    "files": [{"id": "x" * 22, "digest": sha, "size": 10}]}
            await nc.jetstream().publish("pigeon.xr.a.b", msgspec.msgpack.encode(junk))

        # a's node away (its nats-server, and so the stream, stay): the next file's message
        # waits, unacknowledged, until a answers again; then it arrives, once.
        (tmp_path / "e.bin").write_bytes(b"late" * 1000)
        late = await alice.files.upload(tmp_path / "e.bin", kind="document")
        b.node.kill()
        await alice.messages.send(alices, "late file", media=late.file_id)
        await alice.messages.send(alices, "after it")
        await until(lambda: _outbox_empty(a.database))  # relayed: in a's stream
        a.node.kill()
        b.node.start()
        await bob.close()
        bob = await login(b.node, bob_phone, "Bob")
        clients.append(bob)
        await asyncio.sleep(4.0)
        assert (await texts(bob, bobs))[-1] == ""  # the document before: nothing new
        a.node.start()

        async def arrived() -> bool:
            return (await texts(bob, bobs))[-2:] == ["late file", "after it"]
        await until(arrived, 60)
        await asyncio.sleep(1.0)
        history = await texts(bob, bobs)
        assert history == ["hello", "a photo", "", "", "late file", "after it"]
        last = (await bob.messages.history(bobs, limit=2))[1]
        assert last.media is not None
        fetched = await bob.files.download(last.media.file_id, tmp_path / "late.bin")
        assert fetched.read_bytes() == b"late" * 1000
    finally:
        for client in clients:
            await client.close()


async def _outbox_empty(database: str) -> bool:
    return await outbox_depth(database) == 0
