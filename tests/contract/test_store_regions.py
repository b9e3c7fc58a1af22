"""Contract: the store's part in regions (store/region_api.py): remote rows, the outbox written
in the sender's transaction, and a cross-region message applied once however often."""

from __future__ import annotations

from contract_support import T0, make_users, raises

from pigeon.protocol.regions import CrossMessage, RemoteUser
from pigeon.protocol.errors import InvalidArgument, NotFound
from pigeon.store import Store

BOB = RemoteUser(id=(1 << 40) + 7, name="Bob", username="bob")


async def test_a_private_message_to_someone_homed_elsewhere_is_queued_once(store: Store) -> None:
    (alice,) = await make_users(store, 1)
    await store.remember_remote(BOB, "b", T0)
    chat = await store.open_private(alice, BOB.id, T0)
    _, pts, pushes = await store.send_message(alice, chat.id, 11, "one", T0)
    # Only Alice's side is told here (Bob's region tells Bob): no update rows for Bob here.
    assert [user for user, _ in pushes[0].targets] == [alice] and pts > 0
    await store.send_message(alice, chat.id, 11, "one", T0)  # a resend: not queued again
    await store.send_message(alice, chat.id, 12, "two", T0 + 1)
    queued = await store.outbox("b", 10)
    assert [(q.text, q.random_id, q.recipient_id) for q in queued] == [
        ("one", 11, BOB.id), ("two", 12, BOB.id)]
    assert queued[0].sender.id == alice and await store.outbox_depth() == {"b": 2}
    assert await store.outbox("c", 10) == []
    await store.outbox_done([queued[0].id])
    assert [q.text for q in await store.outbox("b", 10)] == ["two"]
    assert await store.outbox_depth() == {"b": 1}


async def test_a_message_between_local_people_is_not_queued(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "hi", T0)
    assert await store.outbox_depth() == {}


async def test_a_cross_region_message_is_applied_once(store: Store) -> None:
    (carol,) = await make_users(store, 1)
    message = CrossMessage(origin="b", sender=BOB, recipient_id=carol, random_id=5,
                           text="from b", date=T0)
    verdict, pushes = await store.apply_cross(message, 1, T0, None)
    assert verdict == "apply" and [user for user, _ in pushes[0].targets] == [carol]
    assert await store.apply_cross(message, 1, T0, None) == ("old", [])  # redelivered
    (bob_row,) = await store.get_users([BOB.id])
    assert bob_row.name == "Bob" and bob_row.phone.startswith("remote:")
    chat = await store.open_private(carol, BOB.id, T0)
    texts = [m.text for m in await store.history(carol, chat.id, None, 10)]
    assert texts == ["from b"]
    # Nobody here by that id: refused (the consumer logs and skips it).
    stray = CrossMessage(origin="b", sender=BOB, recipient_id=999_999, random_id=6,
                         text="?", date=T0)
    with raises(NotFound, "USER_NOT_FOUND"):
        await store.apply_cross(stray, 2, T0, None)
    assert await store.skip_cross("b", 2) == "apply"  # refused for good: the next may come
    # A remote row may not claim a local id.
    with raises(InvalidArgument, "INVALID_ARGUMENT"):
        await store.remember_remote(RemoteUser(id=carol, name="x"), "b", T0)


async def test_only_discoverable_local_people_are_found_for_another_region(store: Store) -> None:
    (dave,) = await make_users(store, 1)
    (row,) = await store.get_users([dave])
    assert await store.local_user(phone=row.phone) is None
    await store.update_user(dave, phone_discoverable=True, username="Dave")
    found = await store.local_user(phone=row.phone)
    assert found is not None and found.id == dave
    assert await store.local_user(username_key="dave") == found
    await store.remember_remote(BOB, "b", T0)
    assert await store.local_user(username_key="bob") is None  # not homed here


async def test_cross_region_messages_are_applied_in_stream_order_only(store: Store) -> None:
    (erin,) = await make_users(store, 1)

    def message(n: int) -> CrossMessage:
        return CrossMessage(origin="b", sender=BOB, recipient_id=erin, random_id=100 + n,
                            text=f"m{n}", date=T0 + n)

    assert await store.apply_cross(message(2), 2, T0, None) == ("early", [])
    assert (await store.apply_cross(message(1), 1, T0, None))[0] == "apply"
    assert await store.skip_cross("b", 3) == "early"  # 2 first
    assert (await store.apply_cross(message(2), 2, T0, None))[0] == "apply"
    assert await store.skip_cross("b", 3) == "apply"
    assert await store.skip_cross("b", 3) == "old"
    assert (await store.apply_cross(message(4), 4, T0, None))[0] == "apply"
    # Each source region has its own sequence.
    other = CrossMessage(origin="c", sender=RemoteUser(id=(2 << 40) + 1, name="Cy"),
                         recipient_id=erin, random_id=1, text="from c", date=T0)
    assert (await store.apply_cross(other, 1, T0, None))[0] == "apply"
    chat = await store.open_private(erin, BOB.id, T0)
    assert [m.text for m in reversed(await store.history(erin, chat.id, None, 10))] == [
        "m1", "m2", "m4"]
