"""The rest of a private chat across regions (issue 12, deliverable 6): typing (core NATS,
ephemeral, bounded per sender, checked on receipt) and pins (a durable event through the
outbox, named by the message's author and random_id). Two regions as in test_regions.py
(each its own PostgreSQL database, nats-server and node, a gateway between them): Alice,
Carol and Dave in a, Bob in b."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from nats_support import nats_client
from test_regions_events import from_other, next_of, pair, until

from pigeon.client import Client
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.regions import CrossTyping, encode
from pigeon.protocol.updates import ChatUpdate, DeleteMessages, NewMessage, Typing
from pigeon.server.region_typing import TYPING_RATE
from pigeon.testing import login
from pigeon.testing_regions import RegionNode as Region

pytestmark = pytest.mark.slow


def typing_of(user_id: int | None) -> Callable[[Typing], bool]:
    return lambda u: u.user_id == user_id


def pinned(chat_id: int, message_id: int) -> Callable[[ChatUpdate], bool]:
    """The chat's update saying that ``message_id`` is pinned (0: none), not an earlier one
    (one's own pin is told to one's own devices too)."""
    return lambda u: u.chat.id == chat_id and u.chat.pinned_message_id == message_id


async def test_typing_crosses_both_ways_and_forgeries_are_dropped(
        regions: tuple[Region, Region], phone: Callable[[], str]) -> None:
    a, b = regions
    alice, bob, alices, bobs, bob_phone = await pair(a, b, phone)
    carol = await login(a.node, phone(), "Carol")
    dave = await login(a.node, phone(), "Dave")
    clients: list[Client] = [alice, bob, carol, dave]
    try:
        bob_id, alice_id = bob.profile.user_id or 0, alice.profile.user_id or 0
        await alice.messages.typing(alices)
        seen = await next_of(bob, Typing)
        assert (seen.chat_id, seen.user_id) == (bobs, alice_id)  # b's copy of the chat
        await bob.messages.typing(bobs)
        seen = await next_of(alice, Typing)
        assert (seen.chat_id, seen.user_id) == (alices, bob_id)
        # Carol is in no chat with Bob: her call is refused as at home.
        with pytest.raises(PigeonError) as refused:
            await carol.messages.typing(alices)
        assert refused.value.code == "NOT_A_MEMBER"
        # Dave writes to Bob, so that b has their chat too (his notices are a marker below).
        await dave.account.resolve_phone(bob_phone)  # so that a knows Bob's row
        to_bob = await dave.chats.open_private(bob_id)
        await dave.messages.send(to_bob.id, "hi bob")
        with_dave = (await next_of(bob, NewMessage, where=from_other(bob))).message.chat_id

        before: Any = (await b.health())["regions"]["typing_dropped"]
        async with nats_client(a.nats.url) as nc:
            subject = "pigeon.region.b.typing"

            async def notice(origin: str, sender: int, recipient: int) -> None:
                await nc.publish(subject, encode(CrossTyping(
                    origin=origin, sender_id=sender, recipient_id=recipient)))
            # Forgeries and junk, each dropped: not msgpack; too long; b's own name; a sender
            # of another region than claimed; a recipient not homed in b; no chat of the two.
            await nc.publish(subject, b"\xc1junk")
            await nc.publish(subject, msgspec.msgpack.encode(
                {"origin": "a", "sender_id": alice_id, "recipient_id": bob_id,
                 "padding": "x" * 400}))
            await notice("b", alice_id, bob_id)
            await notice("a", bob_id, bob_id)
            await notice("a", alice_id, carol.profile.user_id or 0)
            await notice("a", carol.profile.user_id or 0, bob_id)
            # Then, on the same connection (so after them), a good one: the first Bob sees.
            await notice("a", dave.profile.user_id or 0, bob_id)
            first = await next_of(bob, Typing)
            assert (first.chat_id, first.user_id) == (with_dave, dave.profile.user_id)
            # A flood from one sender: b takes at most the rate's worth of it, and Dave's
            # notice after the flood still comes (his own budget).
            started = time.monotonic()
            for _ in range(30):
                await notice("a", alice_id, bob_id)
            await notice("a", dave.profile.user_id or 0, bob_id)
            flood = []
            while (got := await next_of(bob, Typing)).user_id != dave.profile.user_id:
                flood.append(got)
            took = time.monotonic() - started
        assert all((u.chat_id, u.user_id) == (bobs, alice_id) for u in flood)
        # Alice's bucket in b lent one token to her real notice above
        assert 1 <= len(flood) <= TYPING_RATE.burst + took * TYPING_RATE.per_second
        after: Any = (await b.health())["regions"]["typing_dropped"]
        assert after - before >= 6 + 30 - len(flood)

        # a sends no more than the rate either, however often Alice's devices call.
        async with nats_client(b.nats.url) as nc:
            heard = await nc.subscribe("pigeon.region.b.typing")
            await nc.flush()
            started = time.monotonic()
            for _ in range(12):
                try:
                    await alice.messages.typing(alices)
                except PigeonError as exc:  # the shield's own call rate may say no first
                    assert exc.code == "RATE_LIMITED"
            await dave.messages.typing(to_bob.id)  # through the same connection: after them
            senders = []
            while (sent := msgspec.msgpack.decode(
                    (await heard.next_msg(timeout=30)).data, type=CrossTyping)).sender_id \
                    != dave.profile.user_id:
                senders.append(sent.sender_id)
            took = time.monotonic() - started
        assert set(senders) <= {alice_id}
        assert 1 <= len(senders) <= TYPING_RATE.burst + took * TYPING_RATE.per_second
    finally:
        for client in clients:
            await client.close()


async def test_pins_cross_both_ways_once(
        regions: tuple[Region, Region], phone: Callable[[], str]) -> None:
    a, b = regions
    alice, bob, alices, bobs, _ = await pair(a, b, phone)
    carol = await login(a.node, phone(), "Carol")
    clients = [alice, bob, carol]
    try:
        mine = await bob.messages.send(bobs, "pin me")
        theirs = await next_of(alice, NewMessage, where=from_other(alice, alices))
        # Alice pins Bob's message by its id in a's copy; b pins it by b's id.
        chat = await alice.chats.pin(alices, theirs.message.id)
        assert chat.pinned_message_id == theirs.message.id
        await next_of(bob, ChatUpdate, where=pinned(bobs, mine.message.id))
        assert (await bob.chats.get(bobs)).pinned_message_id == mine.message.id
        # Bob unpins, then pins Alice's first message ("hello", 1 in both copies).
        await bob.chats.unpin(bobs)
        await next_of(alice, ChatUpdate, where=pinned(alices, 0))
        await bob.chats.pin(bobs, 1)
        await next_of(alice, ChatUpdate, where=pinned(alices, 1))
        assert (await alice.chats.get(alices)).pinned_message_id == 1
        # A stranger may not pin there.
        with pytest.raises(PigeonError) as refused:
            await carol.chats.pin(alices, 1)
        assert refused.value.code == "NOT_A_MEMBER"
        # Forged and malformed pins on a's stream to b are skipped: a message after them
        # (the stream keeps their order) finds Bob's copy as it was.
        alice_row = {"id": alice.profile.user_id, "name": "Alice"}
        carol_row = {"id": carol.profile.user_id, "name": "Carol"}
        bob_id = bob.profile.user_id
        async with nats_client(a.nats.url) as nc:
            for junk in ({"type": "pin", "origin": "a"},
                         {"type": "pin", "origin": "a", "sender": carol_row,
                          "recipient_id": bob_id, "date": 1.0,
                          "message": [alice.profile.user_id, 1]},
                         {"type": "pin", "origin": "a", "sender": carol_row,
                          "recipient_id": bob_id, "date": 1.0},
                         {"type": "pin", "origin": "a", "sender": alice_row,
                          "recipient_id": bob_id, "date": 1.0, "message": [bob_id, 424242]}):
                await nc.jetstream().publish("pigeon.xr.a.b", msgspec.msgpack.encode(junk))
        await alice.messages.send(alices, "after the forgeries")
        await next_of(bob, NewMessage, where=lambda u: u.message.text == "after the forgeries")
        assert (await bob.chats.get(bobs)).pinned_message_id == 1
        # Deleting the pinned message for everyone unpins it in both copies.
        await alice.messages.delete(alices, [1], for_everyone=True)
        await next_of(bob, DeleteMessages, where=lambda u: u.chat_id == bobs)
        await next_of(bob, ChatUpdate, where=pinned(bobs, 0))  # after it: not Bob's unpin
        assert (await alice.chats.get(alices)).pinned_message_id == 0
        assert (await bob.chats.get(bobs)).pinned_message_id == 0
    finally:
        for client in clients:
            await client.close()


async def test_forged_senders_are_skipped_and_a_row_of_an_unknown_kind_holds_the_rest(
        regions: tuple[Region, Region], phone: Callable[[], str]) -> None:
    import asyncpg  # noqa: PLC0415  (PostgreSQL only where regions are)

    a, b = regions
    alice, bob, alices, bobs, _ = await pair(a, b, phone)
    try:
        alice_id, bob_id = alice.profile.user_id or 0, bob.profile.user_id or 0
        # On a's stream to b, messages "from a" naming someone not of a: an id of b's
        # range that b has no row for, and an id of no region. b must not make them people
        # of a (nor rename anyone).
        forged = [(1 << 40) + 987_654, (9 << 40) + 1]
        async with nats_client(a.nats.url) as nc:
            for i, sender in enumerate(forged):
                junk = {"type": "message", "origin": "a", "recipient_id": bob_id,
                        "sender": {"id": sender, "name": "Mallory"}, "random_id": 4242 + i,
                        "text": "forged", "date": time.time()}
                await nc.jetstream().publish("pigeon.xr.a.b", msgspec.msgpack.encode(junk))
        await alice.messages.send(alices, "after the forgeries")
        await next_of(bob, NewMessage, where=lambda u: u.message.text == "after the forgeries")
        conn = await asyncpg.connect(b.database)
        try:
            assert await conn.fetchval("SELECT COUNT(*) FROM users WHERE id = ANY($1)",
                                       forged) == 0
        finally:
            await conn.close()

        # A row of a kind this version cannot send (a newer node wrote it): the relay stops
        # there, and what comes after it waits behind it, in order, in the outbox.
        conn = await asyncpg.connect(a.database)
        try:
            poll = await conn.fetchval(
                "INSERT INTO region_outbox (region, sender_id, recipient_id, random_id, text, "
                "date, kind) VALUES ('b', $1, $2, 0, '', $3, 'poll') RETURNING id",
                alice_id, bob_id, time.time())

            async def held() -> bool:
                others: Any = (await a.health())["regions"]["others"]
                return bool(others["b"]["held"] == poll)
            await until(held)
            await alice.messages.send(alices, "behind the poll")
            assert await conn.fetchval("SELECT array_agg(kind ORDER BY id) FROM region_outbox "
                                       "WHERE region = 'b'") == ["poll", "message"]
            # a node that knows the kind sends it (here: it goes); the rest follows
            await conn.execute("DELETE FROM region_outbox WHERE id = $1", poll)
        finally:
            await conn.close()
        await next_of(bob, NewMessage, where=lambda u: u.message.text == "behind the poll")
    finally:
        await alice.close()
        await bob.close()
