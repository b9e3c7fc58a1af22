"""Contract: mute (one member's own, told to their devices only) and pin (the chat's, told
to every member; admins in groups, either person in private chats)."""

from __future__ import annotations

from contract_support import MAX_MEMBERS, T0, make_users, pushed_to, raises, targets_of

from pigeon.protocol import limits
from pigeon.protocol.errors import Forbidden, NotFound
from pigeon.store import Store


async def test_a_mute_is_the_members_own_and_told_to_them_alone(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    chat, pushes = await store.mute_chat(b, group.id, T0 + 3600, T0)
    assert chat.muted_until == T0 + 3600
    assert targets_of(pushes) == {b}
    assert [u.chat.muted_until for u in pushed_to(pushes, b)] == [T0 + 3600]
    assert (await store.get_chat(b, group.id)).muted_until == T0 + 3600
    assert (await store.get_chat(a, group.id)).muted_until == 0.0  # a's is a's own
    dialogs = await store.list_dialogs(b, 10)
    assert [d.chat.muted_until for d in dialogs] == [T0 + 3600]
    # For ever; then a time already past unmutes.
    chat, _ = await store.mute_chat(b, group.id, limits.MAX_DATE, T0)
    assert chat.muted_until == limits.MAX_DATE
    chat, _ = await store.mute_chat(b, group.id, T0 - 1, T0)
    assert chat.muted_until == 0.0
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.mute_chat(c, group.id, T0 + 60, T0)


async def test_pin_in_groups_is_for_admins(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    first, _, _ = await store.send_message(b, group.id, 1, "first", T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.pin_message(b, group.id, first.id, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.pin_message(c, group.id, first.id, T0)
    chat, pushes = await store.pin_message(a, group.id, first.id, T0)
    assert chat.pinned_message_id == first.id
    assert targets_of(pushes) == {a, b}
    assert [u.chat.pinned_message_id for u in pushed_to(pushes, b)] == [first.id]
    assert all(u.chat.muted_until is None for u in pushed_to(pushes, b))  # not b's to know
    assert (await store.get_chat(b, group.id)).pinned_message_id == first.id
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.pin_message(a, group.id, first.id + 100, T0)
    await store.set_role(a, group.id, b, "admin", T0)
    chat, _ = await store.pin_message(b, group.id, None, T0)
    assert chat.pinned_message_id == 0


async def test_pin_in_a_private_chat_and_deleting_unpins(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    msg, _, _ = await store.send_message(a, chat.id, 1, "pin me", T0)
    pinned, pushes = await store.pin_message(b, chat.id, msg.id, T0)  # either person may
    assert pinned.pinned_message_id == msg.id and targets_of(pushes) == {a, b}
    # Deleted for oneself: still pinned; deleted for everyone: unpinned, and both are told.
    await store.delete_messages(b, chat.id, [msg.id], False)
    assert (await store.get_chat(a, chat.id)).pinned_message_id == msg.id
    _, _, pushes = await store.delete_messages(a, chat.id, [msg.id], True)
    assert (await store.get_chat(b, chat.id)).pinned_message_id == 0
    assert [u.chat.pinned_message_id for u in pushed_to(pushes, b) if hasattr(u, "chat")] == [0]
    with raises(NotFound, "MESSAGE_NOT_FOUND"):  # a deleted message is not pinned again
        await store.pin_message(a, chat.id, msg.id, T0)
