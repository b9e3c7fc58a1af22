"""Two regions that fail independently (issue 12, deliverable 6): each its own PostgreSQL
database, its own nats-server with JetStream, the two joined by a gateway, and its own
`pigeon serve`. Alice and Carol live in region a, Bob in region b. Region b goes away
(kill -9 of its node and of its nats-server): a keeps serving its own people, and every
message Alice sends Bob meanwhile is acknowledged; b returns and Bob gets each exactly once,
in order. One two-region set-up serves the module's tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import nats
import pytest
from nats_support import nats_client

from pigeon.client import Client
from pigeon.domain.regions import ID_SHIFT
from pigeon.protocol import methods as m
from pigeon.protocol.errors import WrongRegion
from pigeon.protocol.updates import NewMessage
from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region
from pigeon.testing_regions import outbox_depth

pytestmark = pytest.mark.slow

N_AWAY = 20  # messages Alice sends while Bob's region is away
_uk = itertools.count(1)


def uk_phone() -> str:
    """A fresh number homed in region b (+44: a UK mobile range)."""
    return f"+447400{os.getpid() % 1000:03d}{next(_uk):03d}"


async def next_text(client: Client, timeout: float = 30.0) -> tuple[int, str]:
    """The next message someone else sent this client: (chat id, text)."""
    async def wait() -> tuple[int, str]:
        async for update in client.updates():
            if (isinstance(update, NewMessage)
                    and update.message.sender_id != client.profile.user_id):
                return update.message.chat_id, update.message.text
        raise AssertionError("updates ended")
    return await asyncio.wait_for(wait(), timeout)


async def test_people_of_two_regions_find_and_write_to_each_other(
        regions: tuple[Region, Region], phone) -> None:
    a, b = regions
    bob_phone = uk_phone()
    alice = await login(a.node, phone(), "Alice")
    bob = await login(b.node, bob_phone, "Bob")
    clients = [alice, bob]
    try:
        assert bob.profile.user_id is not None and bob.profile.user_id >> ID_SHIFT == 1
        assert alice.profile.user_id is not None and alice.profile.user_id >> ID_SHIFT == 0
        # Logging in at the wrong region says where to go: an old client gets the typed
        # error, the SDK goes there by itself (and keeps going there).
        stray = Client(a.node.url)
        clients.append(stray)
        await stray.connect()
        with pytest.raises(WrongRegion) as wrong:
            await stray.call("auth.send_code", m.SendCode(phone=bob_phone, sms=True))
        assert wrong.value.endpoints == [b.endpoint]
        await stray.auth.send_code(bob_phone, sms=True)
        assert stray.url == b.endpoint and stray.profile.server == b.endpoint
        await stray.auth.sign_in(await asyncio.to_thread(b.node.code_for, bob_phone))
        assert stray.profile.user_id == bob.profile.user_id

        # Found across regions by number only with consent, as at home.
        with pytest.raises(Exception) as hidden:
            await alice.account.resolve_phone(bob_phone)
        assert getattr(hidden.value, "code", "") == "USER_NOT_FOUND"
        await bob.account.set_phone_discoverable(True)
        found = await alice.account.resolve_phone(bob_phone)
        assert (found.id, found.name, found.phone) == (bob.profile.user_id, "Bob", None)
        # Rubbish asked of a region's lookup subject gets no answer and harms nothing.
        async with nats_client(b.nats.url) as nc:
            for junk in (b"\xc1", b"\x82\xa5phone\xa1x\xa8username\xa5bob_x", b"\x80"):
                with pytest.raises(nats.errors.TimeoutError):
                    await nc.request("pigeon.region.b.lookup", junk, timeout=0.5)
        # ... and by username, which says nothing of a region: the others are asked.
        name = f"bob_{os.getpid()}"
        await bob.account.set_username(name)
        assert (await alice.account.resolve_username(name)).id == bob.profile.user_id
        with pytest.raises(Exception) as nobody:
            await alice.account.resolve_username(f"nobody_{os.getpid()}")
        assert getattr(nobody.value, "code", "") == "USER_NOT_FOUND"
        # Both ways.
        to_bob = await alice.chats.open_private(found.id)
        await alice.messages.send(to_bob.id, "hello bob", random_id=777)
        bobs_chat, text = await next_text(bob, 45)
        assert text == "hello bob"
        await next_text(stray, 10)  # Bob's other device, through region b's bus
        await bob.messages.send(bobs_chat, "hello alice")
        assert await next_text(alice, 45) == (to_bob.id, "hello alice")
        # A resend (same random_id) is neither stored nor carried twice.
        await alice.messages.send(to_bob.id, "hello bob", random_id=777)
        await bob.messages.send(bobs_chat, "after")
        assert await next_text(alice, 45) == (to_bob.id, "after")
        history = await bob.messages.history(bobs_chat)
        assert [msg.text for msg in reversed(history)] == ["hello bob", "hello alice", "after"]
    finally:
        for client in clients:
            await client.close()


async def test_a_region_away_loses_nothing_and_the_other_keeps_serving(
        regions: tuple[Region, Region], phone) -> None:
    a, b = regions
    alice = await login(a.node, phone(), "Alice")
    carol = await login(a.node, phone(), "Carol")
    bob_phone = uk_phone()
    bob = await login(b.node, bob_phone, "Bob")
    clients = [alice, carol]
    try:
        await bob.account.set_phone_discoverable(True)
        to_bob = await alice.chats.open_private((await alice.account.resolve_phone(bob_phone)).id)
        await alice.messages.send(to_bob.id, "before")
        bobs_chat, _ = await next_text(bob, 45)
        await bob.close()

        # Region b goes away: its node and its nats-server, kill -9.
        b.node.kill()
        b.nats.kill()
        # a's people keep chatting among themselves ...
        with_carol = await alice.chats.open_private(carol.profile.user_id or 0)
        for i in range(3):
            await alice.messages.send(with_carol.id, f"to carol {i}")
            assert await next_text(carol, 10) == (with_carol.id, f"to carol {i}")
            await carol.messages.send(with_carol.id, f"to alice {i}")
            assert await next_text(alice, 10) == (with_carol.id, f"to alice {i}")
        # ... and what Alice sends Bob is acknowledged by a at once, each.
        for i in range(N_AWAY // 2):
            await asyncio.wait_for(alice.messages.send(to_bob.id, f"away {i}"), 10)
        # Rubbish on the cross-region subject is dropped by b, not fatal.
        async with nats_client(a.nats.url) as nc:
            await nc.jetstream().publish("pigeon.xr.a.b", b"\xc1 not msgpack")
            await nc.jetstream().publish("pigeon.xr.a.b", b"\x81\xa4type\xa4poll")
        # Region a's own nats-server dies too: a's people are still served (one node), and
        # what Alice sends waits in a's outbox; then a's node is killed with it unrelayed.
        a.nats.kill()
        for i in range(N_AWAY // 2, N_AWAY):
            await asyncio.wait_for(alice.messages.send(to_bob.id, f"away {i}"), 10)
        await alice.messages.send(with_carol.id, "nats away")
        assert await next_text(carol, 10) == (with_carol.id, "nats away")
        assert await outbox_depth(a.database) >= N_AWAY // 2  # and the first half may be too
        a.node.kill()
        a.nats.start()
        a.node.start()
        # Looking someone up in b fails clearly, at once.
        started = time.monotonic()
        with pytest.raises(Exception) as away:
            await alice.account.resolve_phone(uk_phone())
        assert getattr(away.value, "code", "") == "REGION_UNAVAILABLE"
        assert time.monotonic() - started < 10
        health = await a.health()
        assert health["status"] in ("ok", "degraded")
        assert health["regions"]["others"]["b"]["reachable"] is False

        # Region b returns: the same database, the same JetStream directory.
        b.nats.start()
        b.node.start()
        bob = await login(b.node, bob_phone, "Bob")
        clients.append(bob)
        want = ["before"] + [f"away {i}" for i in range(N_AWAY)]
        deadline = time.monotonic() + 40
        while True:
            texts = [msg.text for msg in reversed(await bob.messages.history(bobs_chat))]
            if len(texts) >= len(want):
                break
            assert time.monotonic() < deadline, texts
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.0)  # anything delivered twice would land now
        history = list(reversed(await bob.messages.history(bobs_chat, limit=1000)))
        assert [msg.text for msg in history] == want  # each once, in order
        assert [msg.id for msg in history] == list(range(1, len(want) + 1))
        # Bob's own update stream (what get_difference pages through) has each once too.
        diff = await bob.call("updates.get_difference", m.GetDifference(pts=0))
        carried = [u.message.text for u in diff.updates if isinstance(u, NewMessage)
                   and u.message.chat_id == bobs_chat]
        assert carried == want
        health = await b.health()
        assert health["regions"]["dropped"] >= 2  # the rubbish
        # Bob -> Alice works again.
        await bob.messages.send(bobs_chat, "back")
        assert await next_text(alice, 45) == (to_bob.id, "back")
    finally:
        for client in clients:
            await client.close()


