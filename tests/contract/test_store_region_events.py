"""Contract: edits, deletes for everyone, read marks and replies in a private chat across
regions (store/sqlite_region_events.py): queued in the actor's own transaction, named by
the message's author and random_id, and applied in the other copy once, through the same
functions as a local change."""

from __future__ import annotations

import pytest
from contract_support import T0, make_users, pushed_to, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden, NotFound
from pigeon.protocol.regions import (
    CrossDelete, CrossEdit, CrossMessage, CrossRead, MessageRef, RemoteUser, cross_of,
)
from pigeon.store import Store

BOB = RemoteUser(id=(1 << 40) + 9, name="Bob")


@pytest.fixture(autouse=True)
def _regions_on(store: Store) -> None:
    store.crosses_regions = True  # as server/backends.make_store sets it with a region table


async def test_what_happens_here_is_queued_by_author_and_random_id(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    await store.remember_remote(BOB, "b", T0)
    chat = await store.open_private(alice, BOB.id, T0)
    first, _, _ = await store.send_message(alice, chat.id, 21, "one", T0)
    await store.send_message(alice, chat.id, 22, "two", T0, reply_to=first.id)
    # Bob's message arrives from b; Alice reads it, edits hers, deletes one for everyone.
    came = CrossMessage(origin="b", sender=BOB, recipient_id=alice, random_id=-4,
                        text="from bob", date=T0 + 1)
    assert (await store.apply_cross(came, 1, T0, None))[0] == "apply"
    await store.read_history(alice, chat.id, 3)
    await store.edit_message(alice, chat.id, first.id, "one!", T0 + 2)
    await store.delete_messages(alice, chat.id, [2, 3], True)
    await store.delete_messages(alice, chat.id, [1], False)  # for oneself: stays here
    made = [cross_of(q.kind, {"origin": "a", **q.fields()}) for q in await store.outbox("b", 10)]
    assert [type(m).__name__ for m in made] == [
        "CrossMessage", "CrossMessage", "CrossRead", "CrossEdit", "CrossDelete"]
    assert made[1] == CrossMessage(origin="a", sender=made[0].sender, recipient_id=BOB.id,
                                   random_id=22, text="two", date=T0,
                                   reply_to=MessageRef(alice, 21))
    assert isinstance(made[2], CrossRead) and made[2].random_id == -4
    assert made[2].recipient_id == BOB.id
    assert isinstance(made[3], CrossEdit) and (made[3].random_id, made[3].text) == (21, "one!")
    assert isinstance(made[4], CrossDelete)
    assert made[4].messages == [MessageRef(alice, 22), MessageRef(BOB.id, -4)]


async def test_what_happened_there_is_applied_here_once(store: Store) -> None:
    (carol,) = await make_users(store, 1)

    def sent(seq: int, random_id: int, text: str, **more: object) -> CrossMessage:
        return CrossMessage(origin="b", sender=BOB, recipient_id=carol, random_id=random_id,
                            text=text, date=T0 + seq, **more)  # type: ignore[arg-type]

    assert (await store.apply_cross(sent(1, 7, "hi"), 1, T0, None))[0] == "apply"
    chat = await store.open_private(carol, BOB.id, T0)
    mine, _, _ = await store.send_message(carol, chat.id, 70, "hello bob", T0 + 2)
    # Bob read it (his region says so by its author and random_id): Carol hears it here.
    read = CrossRead(origin="b", sender=BOB, recipient_id=carol, random_id=70, date=T0 + 2)
    _, pushes = await store.apply_cross(read, 2, T0, None)
    assert [(type(u), u.max_id) for u in pushed_to(pushes, carol)] == [(up.ReadOutbox, mine.id)]
    assert (await store.apply_cross(read, 2, T0, None)) == ("old", [])
    reply = sent(3, 8, "re", reply_to=MessageRef(carol, 70))
    assert (await store.apply_cross(reply, 3, T0, None))[0] == "apply"
    edit = CrossEdit(origin="b", sender=BOB, recipient_id=carol, random_id=7, text="hi!",
                     date=T0 + 3)
    verdict, pushes = await store.apply_cross(edit, 4, T0, None)
    assert verdict == "apply"
    assert [u.message.text for u in pushed_to(pushes, carol)] == ["hi!"]
    assert await store.apply_cross(edit, 4, T0, None) == ("old", [])  # redelivered
    gone = CrossDelete(origin="b", sender=BOB, recipient_id=carol,
                       messages=[MessageRef(BOB.id, 7), MessageRef(BOB.id, 999)], date=T0 + 5)
    _, pushes = await store.apply_cross(gone, 5, T0, None)
    (deleted,) = pushed_to(pushes, carol)
    assert isinstance(deleted, up.DeleteMessages) and deleted.message_ids == [1]
    history = list(reversed(await store.history(carol, chat.id, None, 10)))
    assert [(m.text, m.reply_to) for m in history] == [("hello bob", None), ("re", mine.id)]
    # A reply to a message deleted here meanwhile still comes, as a reply to nothing.
    late = sent(6, 9, "re: hi", reply_to=MessageRef(BOB.id, 7))
    assert (await store.apply_cross(late, 6, T0, None))[0] == "apply"
    assert (await store.history(carol, chat.id, None, 1))[0].reply_to is None
    # An event for a message this copy lacks is refused (the consumer skips it) ...
    stray = CrossEdit(origin="b", sender=BOB, recipient_id=carol, random_id=12345, text="?",
                      date=T0)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.apply_cross(stray, 7, T0, None)
    # ... and so is one naming a message of a chat the two do not share.
    (dan,) = await make_users(store, 1)
    other = await store.open_private(dan, carol, T0)
    await store.send_message(dan, other.id, 5, "private", T0)
    nosy = CrossRead(origin="b", sender=BOB, recipient_id=dan, random_id=5, date=T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.apply_cross(nosy, 7, T0, None)
    # Nothing applied from there goes back there: only Carol's own message was queued.
    assert [q.text for q in await store.outbox("b", 10)] == ["hello bob"]
