"""Contract: pins and typing in a private chat across regions (store/sqlite_region_chat.py),
and a deployment without regions paying nothing for them: its edits, deletes for everyone,
read marks and pins queue nothing, even in a chat with a row homed elsewhere."""

from __future__ import annotations

from contract_support import T0, make_users, pushed_to, raises

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden, NotFound
from pigeon.protocol.regions import CrossMessage, CrossPin, MessageRef, RemoteUser, cross_of
from pigeon.store import Store

BOB = RemoteUser(id=(1 << 40) + 11, name="Bob")


async def _chat_with_bob(store: Store) -> tuple[int, int, int, int]:
    """Alice (homed here) and Bob (homed in b), one message each way; Alice, the chat, and
    two more people homed here."""
    alice, carol, dan = await make_users(store, 3)
    await store.remember_remote(BOB, "b", T0)
    chat = await store.open_private(alice, BOB.id, T0)
    await store.send_message(alice, chat.id, 31, "from alice", T0)
    came = CrossMessage(origin="b", sender=BOB, recipient_id=alice, random_id=-3,
                        text="from bob", date=T0 + 1)
    assert (await store.apply_cross(came, 1, T0, None))[0] == "apply"
    return alice, chat.id, carol, dan


async def test_a_pin_here_is_queued_by_author_and_random_id(store: Store) -> None:
    store.crosses_regions = True
    alice, chat, carol, dan = await _chat_with_bob(store)
    await store.pin_message(alice, chat, 2, T0 + 2)  # Bob's message, by its id here
    await store.pin_message(alice, chat, None, T0 + 3)
    await store.pin_message(alice, chat, 1, T0 + 4)
    made = [cross_of(q.kind, {"origin": "a", **q.fields()}) for q in await store.outbox("b", 10)]
    pins = [m for m in made if isinstance(m, CrossPin)]
    assert [(p.message, p.date, p.recipient_id) for p in pins] == [
        (MessageRef(BOB.id, -3), T0 + 2, BOB.id), (None, T0 + 3, BOB.id),
        (MessageRef(alice, 31), T0 + 4, BOB.id)]


async def test_a_pin_from_there_is_applied_here_once(store: Store) -> None:
    store.crosses_regions = True
    alice, chat, carol, dan = await _chat_with_bob(store)
    pin = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 5,
                   message=MessageRef(alice, 31))
    verdict, pushes = await store.apply_cross(pin, 2, T0, None)
    assert verdict == "apply"
    assert [u.chat.pinned_message_id for u in pushed_to(pushes, alice)
            if isinstance(u, up.ChatUpdate)] == [1]
    assert (await store.get_chat(alice, chat)).pinned_message_id == 1
    assert await store.apply_cross(pin, 2, T0, None) == ("old", [])  # redelivered
    unpin = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 6)
    assert (await store.apply_cross(unpin, 3, T0, None))[0] == "apply"
    assert (await store.get_chat(alice, chat)).pinned_message_id == 0
    # A message this copy lacks, or of a chat Bob is not in, is refused (the consumer skips).
    stray = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0,
                     message=MessageRef(BOB.id, 999))
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.apply_cross(stray, 4, T0, None)
    other = await store.open_private(dan, alice, T0)
    await store.send_message(alice, other.id, 5, "between us", T0)  # Alice's, not to Bob
    nosy = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0,
                    message=MessageRef(alice, 5))
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.apply_cross(nosy, 4, T0, None)
    with raises(NotFound, "CHAT_NOT_FOUND"):  # an unpin in a chat the two do not have
        await store.apply_cross(CrossPin(origin="b", sender=BOB, recipient_id=dan, date=T0),
                                4, T0, None)
    assert (await store.get_chat(dan, other.id)).pinned_message_id == 0
    # Nothing applied from there goes back there.
    assert [q.kind for q in await store.outbox("b", 10)] == ["message"]


async def test_the_last_pin_wins_whichever_region_made_it(store: Store) -> None:
    """Pins made on both sides at once end the same in both copies: the later one."""
    store.crosses_regions = True
    alice, chat, carol, dan = await _chat_with_bob(store)
    # Alice pins at T+10 here; Bob's pin dated T+5 comes after it: hers stays (as in b,
    # where hers comes after his).
    await store.pin_message(alice, chat, 1, T0 + 10)
    older = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 5,
                     message=MessageRef(BOB.id, -3))
    assert await store.apply_cross(older, 2, T0, None) == ("apply", [])
    assert (await store.get_chat(alice, chat)).pinned_message_id == 1
    unpin = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 9)
    assert await store.apply_cross(unpin, 3, T0, None) == ("apply", [])
    assert (await store.get_chat(alice, chat)).pinned_message_id == 1
    # The symmetric case: Bob's pin dated after Alice's replaces it.
    newer = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 11,
                     message=MessageRef(BOB.id, -3))
    assert (await store.apply_cross(newer, 4, T0, None))[0] == "apply"
    assert (await store.get_chat(alice, chat)).pinned_message_id == 2
    # The same date: the larger author id wins in both copies (Bob's, of region 1).
    tie = CrossPin(origin="b", sender=BOB, recipient_id=alice, date=T0 + 12)
    await store.pin_message(alice, chat, 1, T0 + 12)
    assert (await store.apply_cross(tie, 5, T0, None))[0] == "apply"
    assert (await store.get_chat(alice, chat)).pinned_message_id == 0


async def test_typing_is_heard_only_by_who_local_typing_reaches(store: Store) -> None:
    alice, chat, carol, dan = await _chat_with_bob(store)
    assert await store.typing_audience(BOB.id, alice, 10) == (chat, [alice])
    sides = await store.typing_peer(alice, chat)
    assert sides is not None and (sides.remote_id, sides.remote_region) == (BOB.id, "b")
    await store.block(alice, BOB.id, T0)
    assert await store.typing_audience(BOB.id, alice, 10) == (chat, [])
    # No chat of the two here; a chat of two people homed here; not a member.
    assert await store.typing_audience(BOB.id, carol, 10) is None
    local = await store.open_private(carol, dan, T0)
    assert await store.typing_peer(carol, local.id) is None
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.typing_peer(carol, chat)


async def test_without_regions_nothing_looks_for_the_other_copy(store: Store) -> None:
    assert store.crosses_regions is False  # a store's default: what make_store keeps
    alice, chat, carol, dan = await _chat_with_bob(store)
    depth = await store.outbox_depth()
    await store.read_history(alice, chat, 2)
    await store.edit_message(alice, chat, 1, "edited", T0 + 2)
    assert (await store.get_message(alice, chat, 1)).text == "edited"
    await store.pin_message(alice, chat, 1, T0 + 3)
    assert (await store.get_chat(alice, chat)).pinned_message_id == 1
    await store.delete_messages(alice, chat, [1, 2], True)
    # Each did what it does locally, and none queued an event.
    assert await store.outbox_depth() == depth
    assert await store.history(alice, chat, None, 10) == []
    assert (await store.get_chat(alice, chat)).pinned_message_id == 0
