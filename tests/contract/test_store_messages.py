"""Contract: sending, idempotent resend, editing, deleting, history and read receipts."""

from __future__ import annotations

from contract_support import (
    MAX_MEMBERS,
    T0,
    full_difference,
    make_users,
    pushed_to,
    raises,
    targets_of,
)

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.types import FwdFrom
from pigeon.store import Store


async def ids_in_history(store: Store, user_id: int, chat_id: int) -> list[int]:
    return [m.id for m in await store.history(user_id, chat_id, None, 100)]


# -- sending --------------------------------------------------------------------------------
async def test_message_ids_start_at_one_and_count_up_per_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    one = await store.open_private(a, b, T0)
    two = await store.open_private(a, c, T0)
    ids = {one.id: [], two.id: []}
    for i, chat_id in enumerate([one.id, two.id, one.id, one.id, two.id]):
        message, _, _ = await store.send_message(a, chat_id, i, f"m{i}", T0 + i)
        ids[chat_id].append(message.id)
    assert ids == {one.id: [1, 2, 3], two.id: [1, 2]}
    assert (await store.get_chat(b, one.id)).last_message_id == 3


async def test_send_returns_the_message_and_pushes_it_to_every_member(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    message, pts, pushes = await store.send_message(b, group.id, 42, "hello", T0 + 1)
    assert (message.chat_id, message.id, message.sender_id, message.date, message.text) == (
        group.id, 1, b, T0 + 1, "hello")
    assert (message.reply_to, message.fwd_from, message.edit_date, message.deleted) == (
        None, None, None, False)
    assert targets_of(pushes) == {a, b, c}
    for uid in (a, b, c):
        (update,) = pushed_to(pushes, uid)
        assert isinstance(update, up.NewMessage) and update.message == message
    assert pts == pushed_to(pushes, b)[0].pts == (await store.get_state(b)).pts
    assert await store.get_message(c, group.id, 1) == message


async def test_resending_a_random_id_returns_the_original(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    original, pts, pushes = await store.send_message(a, chat.id, 7, "once", T0)
    await store.send_message(b, chat.id, 8, "reply", T0 + 1)  # others move on meanwhile
    state = await store.get_state(a)
    again, again_pts, again_pushes = await store.send_message(a, chat.id, 7, "once", T0 + 2)
    assert (again, again_pts, again_pushes) == (original, pts, [])
    # Even if the retry carries different text, the first one wins: it is the same send.
    again, _, _ = await store.send_message(a, chat.id, 7, "twice?", T0 + 3)
    assert again == original
    assert await store.get_state(a) == state
    assert await ids_in_history(store, b, chat.id) == [2, 1]
    news = [u for u in await full_difference(store, b) if isinstance(u, up.NewMessage)]
    assert [u.message.id for u in news] == [1, 2]
    assert pushes  # only the first send pushed


async def test_random_ids_belong_to_their_sender(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    first, _, _ = await store.send_message(a, chat.id, 7, "from a", T0)
    second, _, pushes = await store.send_message(b, chat.id, 7, "from b", T0)
    assert (first.id, second.id) == (1, 2)
    assert pushes


async def test_random_id_reused_for_another_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    one = await store.open_private(a, b, T0)
    two = await store.open_private(a, c, T0)
    await store.send_message(a, one.id, 7, "x", T0)
    with raises(Conflict, "RANDOM_ID_DUPLICATE"):
        await store.send_message(a, two.id, 7, "x", T0)
    assert await ids_in_history(store, a, two.id) == []


async def test_send_to_a_chat_one_is_not_in(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.send_message(c, chat.id, 1, "intruder", T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.send_message(a, 10**9, 2, "void", T0)
    # A refused send consumes neither an id nor a pts, nor its random_id.
    message, _, _ = await store.send_message(a, chat.id, 1, "first", T0)
    assert message.id == 1
    assert (await store.get_state(c)).pts == 0


async def test_removed_member_cannot_send(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.remove_member(a, group.id, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.send_message(b, group.id, 1, "let me in", T0)


async def test_reply_to(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "question", T0)
    reply, _, _ = await store.send_message(b, chat.id, 2, "answer", T0, reply_to=1)
    assert reply.reply_to == 1
    assert (await store.get_message(a, chat.id, reply.id)).reply_to == 1


async def test_reply_to_a_missing_message(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.send_message(a, chat.id, 1, "re: nothing", T0, reply_to=5)
    message, _, _ = await store.send_message(a, chat.id, 1, "retry without", T0)
    assert message.id == 1  # the refused send left no hole


async def test_reply_to_a_message_of_another_chat(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    one = await store.open_private(a, b, T0)
    two = await store.open_private(a, c, T0)
    await store.send_message(a, one.id, 1, "in one", T0)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.send_message(a, two.id, 2, "re: one", T0, reply_to=1)


async def test_reply_to_a_message_deleted_for_everyone(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "oops", T0)
    await store.delete_messages(a, chat.id, [1], for_everyone=True)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.send_message(b, chat.id, 2, "re: oops", T0, reply_to=1)


async def test_forwarded_from_survives(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    fwd = FwdFrom(sender_id=b, chat_id=99, message_id=3, date=T0 - 10)
    message, _, _ = await store.send_message(a, chat.id, 1, "fwd", T0, fwd_from=fwd)
    assert message.fwd_from == fwd
    assert (await store.get_message(b, chat.id, 1)).fwd_from == fwd
    (news,) = [u for u in await full_difference(store, b) if isinstance(u, up.NewMessage)]
    assert news.message.fwd_from == fwd


async def test_text_round_trips_exactly(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    text = "emoji 🐦, RTL مرحبا, NUL \x00, CRLF\r\n, " + "x" * 4000
    await store.send_message(a, chat.id, 1, text, T0)
    assert (await store.get_message(b, chat.id, 1)).text == text


# -- editing --------------------------------------------------------------------------------
async def test_edit_own_message(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.send_message(b, group.id, 1, "typo", T0)
    edited, pushes = await store.edit_message(b, group.id, 1, "fixed", T0 + 5)
    assert (edited.id, edited.text, edited.edit_date, edited.date) == (1, "fixed", T0 + 5, T0)
    assert targets_of(pushes) == {a, b, c}
    (update,) = pushed_to(pushes, a)
    assert isinstance(update, up.EditMessage) and update.message == edited
    assert await store.get_message(c, group.id, 1) == edited
    assert (await store.history(a, group.id, None, 10))[0] == edited


async def test_edit_someone_elses_message(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(b, group.id, 1, "mine", T0)
    with raises(Forbidden, "NOT_AUTHOR"):  # not even the owner
        await store.edit_message(a, group.id, 1, "yours now", T0)
    assert (await store.get_message(a, group.id, 1)).text == "mine"


async def test_edit_missing_or_foreign(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.edit_message(a, chat.id, 1, "nothing", T0)
    await store.send_message(a, chat.id, 1, "x", T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.edit_message(c, chat.id, 1, "y", T0)
    await store.delete_messages(a, chat.id, [1], for_everyone=True)
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.edit_message(a, chat.id, 1, "undead", T0)


# -- deleting -------------------------------------------------------------------------------
async def test_delete_for_self_hides_only_from_self(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(3):
        await store.send_message(a, chat.id, i, f"m{i}", T0 + i)
    pts, count, pushes = await store.delete_messages(b, chat.id, [2], for_everyone=False)
    assert count == 1
    assert targets_of(pushes) == {b}
    (update,) = pushed_to(pushes, b)
    assert isinstance(update, up.DeleteMessages)
    assert (update.chat_id, update.message_ids, update.for_everyone) == (chat.id, [2], False)
    assert pts == update.pts == (await store.get_state(b)).pts
    assert await ids_in_history(store, b, chat.id) == [3, 1]
    assert await ids_in_history(store, a, chat.id) == [3, 2, 1]
    assert (await store.get_message(a, chat.id, 2)).text == "m1"


async def test_delete_for_everyone_tombstones(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    for i in range(3):
        await store.send_message(b, group.id, i, f"secret {i}", T0 + i)
    pts, count, pushes = await store.delete_messages(b, group.id, [2, 3, 3, 99], True)
    assert count == 2
    assert targets_of(pushes) == {a, b, c}
    (update,) = pushed_to(pushes, c)
    assert isinstance(update, up.DeleteMessages)
    assert (update.message_ids, update.for_everyone) == ([2, 3], True)
    assert pts == pushed_to(pushes, b)[0].pts
    for uid in (a, b, c):
        assert await ids_in_history(store, uid, group.id) == [1]
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.get_message(a, group.id, 2)
    # The id is not reused, and the text is gone even from the update log.
    message, _, _ = await store.send_message(a, group.id, 100, "next", T0 + 9)
    assert message.id == 4
    for u in await full_difference(store, c):
        if isinstance(u, up.NewMessage) and u.message.id in (2, 3):
            assert u.message.deleted and "secret" not in u.message.text


async def test_deleting_others_messages_for_everyone_in_groups(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.send_message(b, group.id, 1, "b's", T0)
    with raises(Forbidden, "NOT_ADMIN"):
        await store.delete_messages(c, group.id, [1], for_everyone=True)
    # For oneself, anyone may hide anything.
    _, count, _ = await store.delete_messages(c, group.id, [1], for_everyone=False)
    assert count == 1
    _, count, _ = await store.delete_messages(a, group.id, [1], for_everyone=True)  # the owner
    assert count == 1


async def test_either_side_retracts_in_private_chats(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "a's", T0)
    _, count, pushes = await store.delete_messages(b, chat.id, [1], for_everyone=True)
    assert count == 1 and targets_of(pushes) == {a, b}
    assert await ids_in_history(store, a, chat.id) == []


async def test_deleting_nothing_changes_nothing(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "x", T0)
    await store.delete_messages(a, chat.id, [1], for_everyone=True)
    state = await store.get_state(a)
    for ids, everyone in (([99], True), ([1], True), ([1], False), ([5, 6], False)):
        assert await store.delete_messages(a, chat.id, ids, everyone) == (0, 0, [])
    assert await store.get_state(a) == state


async def test_delete_in_a_chat_one_is_not_in(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "x", T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.delete_messages(c, chat.id, [1], for_everyone=True)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.delete_messages(a, 10**9, [1], for_everyone=True)


# -- history --------------------------------------------------------------------------------
async def test_history_pages_newest_first(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(7):
        await store.send_message(a if i % 2 else b, chat.id, i, f"m{i}", T0 + i)
    assert [m.id for m in await store.history(a, chat.id, None, 3)] == [7, 6, 5]
    assert [m.id for m in await store.history(a, chat.id, 5, 3)] == [4, 3, 2]
    assert [m.id for m in await store.history(a, chat.id, 2, 3)] == [1]
    assert await store.history(a, chat.id, 1, 3) == []


async def test_history_of_strangers(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.history(c, chat.id, None, 10)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.history(a, 10**9, None, 10)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.get_message(c, chat.id, 1)


async def test_newcomers_do_not_see_earlier_history(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "before c", T0)
    await store.send_message(b, group.id, 2, "also before", T0)
    await store.add_members(a, group.id, [c], T0 + 1, MAX_MEMBERS)
    assert await ids_in_history(store, c, group.id) == []
    with raises(NotFound, "MESSAGE_NOT_FOUND"):
        await store.get_message(c, group.id, 1)
    (dialog,) = await store.list_dialogs(c)
    assert (dialog.last_message, dialog.unread_count) == (None, 0)
    await store.send_message(a, group.id, 3, "welcome", T0 + 2)
    assert await ids_in_history(store, c, group.id) == [3]
    assert (await store.list_dialogs(c))[0].unread_count == 1
    # Old messages stay out of the newcomer's reach: they cannot delete them, and later
    # edits (which carry the whole text) do not reach them.
    assert await store.delete_messages(c, group.id, [1, 2], for_everyone=False) == (0, 0, [])
    _, pushes = await store.edit_message(a, group.id, 1, "before c, edited", T0 + 3)
    assert c not in targets_of(pushes)
    texts = [u.message.text for u in await full_difference(store, c)
             if isinstance(u, (up.NewMessage, up.EditMessage))]
    assert texts == ["welcome"]


async def test_leaving_and_rejoining_starts_afresh(store: Store) -> None:
    a, b = await make_users(store, 2)
    group, _ = await store.create_group(a, "G", [b], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "one", T0)
    await store.remove_member(b, group.id, b, T0)
    await store.send_message(a, group.id, 2, "while away", T0)
    await store.add_members(a, group.id, [b], T0, MAX_MEMBERS)
    assert await ids_in_history(store, b, group.id) == []
    await store.send_message(a, group.id, 3, "back", T0)
    assert await ids_in_history(store, b, group.id) == [3]


# -- read receipts --------------------------------------------------------------------------
async def test_read_history_counts_unread_and_notifies_both_sides(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(3):
        await store.send_message(a, chat.id, i, f"m{i}", T0 + i)
    assert (await store.list_dialogs(b))[0].unread_count == 3
    pts, unread, pushes = await store.read_history(b, chat.id, 2)
    assert unread == 1
    assert targets_of(pushes) == {a, b}
    (inbox,) = pushed_to(pushes, b)
    assert isinstance(inbox, up.ReadInbox)
    assert (inbox.chat_id, inbox.max_id, inbox.unread_count, inbox.pts) == (chat.id, 2, 1, pts)
    (outbox,) = pushed_to(pushes, a)
    assert isinstance(outbox, up.ReadOutbox) and (outbox.chat_id, outbox.max_id) == (chat.id, 2)
    assert pts == (await store.get_state(b)).pts
    (dialog_b,) = await store.list_dialogs(b)
    assert (dialog_b.unread_count, dialog_b.read_inbox_max_id) == (1, 2)
    (dialog_a,) = await store.list_dialogs(a)
    assert dialog_a.read_outbox_max_id == 2


async def test_reading_again_or_backwards_is_a_no_op(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    for i in range(3):
        await store.send_message(a, chat.id, i, f"m{i}", T0 + i)
    pts, _, _ = await store.read_history(b, chat.id, 2)
    state_a = await store.get_state(a)
    assert await store.read_history(b, chat.id, 2) == (pts, 1, [])
    assert await store.read_history(b, chat.id, 1) == (pts, 1, [])
    assert await store.get_state(a) == state_a


async def test_reading_past_the_end_reads_everything(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "m", T0)
    _, unread, pushes = await store.read_history(b, chat.id, 10**6)
    assert unread == 0
    (inbox,) = pushed_to(pushes, b)
    assert inbox.max_id == 1
    # Nothing is left to read: a new message is unread again.
    await store.send_message(a, chat.id, 2, "m", T0)
    assert (await store.list_dialogs(b))[0].unread_count == 1


async def test_sending_reads_what_came_before(store: Store) -> None:
    a, b = await make_users(store, 2)
    chat = await store.open_private(a, b, T0)
    await store.send_message(a, chat.id, 1, "ping", T0)
    await store.send_message(b, chat.id, 2, "pong", T0)
    (dialog,) = await store.list_dialogs(b)
    assert dialog.unread_count == 0
    # Own messages are never unread.
    assert (await store.list_dialogs(a))[0].unread_count == 1


async def test_read_receipts_in_groups_reach_each_author_once(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    group, _ = await store.create_group(a, "G", [b, c], T0, MAX_MEMBERS)
    await store.send_message(a, group.id, 1, "a1", T0)
    await store.send_message(b, group.id, 2, "b2", T0)
    await store.send_message(a, group.id, 3, "a3", T0)
    _, unread, pushes = await store.read_history(c, group.id, 3)
    assert unread == 0
    assert [type(u) for u in pushed_to(pushes, a)] == [up.ReadOutbox]
    assert [type(u) for u in pushed_to(pushes, b)] == [up.ReadOutbox]
    assert [type(u) for u in pushed_to(pushes, c)] == [up.ReadInbox]
    # b already knows its message was read up to 3; another reader up to 3 tells nobody.
    _, _, pushes = await store.read_history(b, group.id, 3)
    assert targets_of(pushes) == {b}


async def test_read_in_a_chat_one_is_not_in(store: Store) -> None:
    a, b, c = await make_users(store, 3)
    chat = await store.open_private(a, b, T0)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.read_history(c, chat.id, 1)
    with raises(Forbidden, "NOT_A_MEMBER"):
        await store.read_history(a, 10**9, 1)
