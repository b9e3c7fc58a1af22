"""Replies, edits, deletion rights, read marks (pigeon.domain.messages), who is told
(pigeon.domain.audience) and chat views (pigeon.domain.views), without any database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import audience, views
from pigeon.domain import messages as rules
from pigeon.domain.records import ChatRow, Standing
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.types import Message, Role


def msg(id: int, sender: int = 1, deleted: bool = False) -> Message:
    return Message(chat_id=7, id=id, sender_id=sender, date=float(id), text="" if deleted else "x",
                   deleted=deleted)


def standing(kind: str = "group", role: Role = "member", history_from: int = 0,
             read: int = 0, last: int = 10) -> Standing:
    return Standing(kind, role, history_from, read, last)  # type: ignore[arg-type]


# -- what a member sees -----------------------------------------------------------------------
def test_a_member_sees_what_came_after_they_joined_and_is_not_deleted():
    assert rules.visible(msg(5), 4)
    assert not rules.visible(msg(4), 4)  # from before they joined
    assert not rules.visible(msg(5, deleted=True), 0)
    assert not rules.visible(None, 0)
    assert not rules.in_history(msg(5), 0, hidden=True)  # deleted for themselves


@pytest.mark.parametrize("row", [None, msg(3), msg(6, deleted=True)])
def test_unseen_messages_are_not_found_alike(row: Message | None):
    with pytest.raises(NotFound) as info:
        rules.seen_message(row, 4, 7, 9)
    assert (info.value.code, str(info.value)) == ("MESSAGE_NOT_FOUND",
                                                  "MESSAGE_NOT_FOUND: no message 9 in chat 7")
    with pytest.raises(NotFound):
        rules.check_reply(row, 4, 9)


def test_one_replies_to_what_one_sees():
    rules.check_reply(msg(5), 4, 5)
    assert rules.seen_message(msg(5), 4, 7, 5) == msg(5)


def test_a_forward_names_the_first_origin():
    first = rules.forward_origin(msg(5, sender=2))
    assert (first.sender_id, first.chat_id, first.message_id, first.date) == (2, 7, 5, 5.0)
    copy = Message(chat_id=8, id=1, sender_id=3, date=9.0, text="x", fwd_from=first)
    assert rules.forward_origin(copy) == first


def test_only_the_author_edits():
    rules.check_edit(msg(5, sender=2), 2)
    with pytest.raises(Forbidden) as info:
        rules.check_edit(msg(5, sender=2), 3)
    assert info.value.code == "NOT_AUTHOR"


def test_a_random_id_belongs_to_one_chat():
    rules.check_replay(7, 7)
    with pytest.raises(Conflict) as info:
        rules.check_replay(7, 8)
    assert info.value.code == "RANDOM_ID_DUPLICATE"


@pytest.mark.parametrize(("kind", "role", "others", "allowed"), [
    ("private", "member", True, True),
    ("group", "member", False, True), ("group", "member", True, False),
    ("group", "admin", True, True), ("group", "owner", True, True),
])
def test_who_may_delete_for_everyone(kind: str, role: Role, others: bool, allowed: bool):
    rows = [msg(5, sender=1), msg(6, sender=2 if others else 1)]
    if allowed:
        rules.check_delete_for_everyone(standing(kind, role), 1, rows)
    else:
        with pytest.raises(Forbidden) as info:
            rules.check_delete_for_everyone(standing(kind, role), 1, rows)
        assert info.value.code == "NOT_ADMIN"


def test_only_what_one_sees_can_be_deleted():
    rows = [msg(6), msg(2), msg(5, deleted=True), msg(4)]
    assert [m.id for m in rules.deletable(rows, 3)] == [4, 6]


# -- read marks -------------------------------------------------------------------------------
def test_reading_moves_the_mark_forward_only_and_never_past_the_last_message():
    assert rules.read_up_to(standing(read=4, last=10), 3) is None
    assert rules.read_up_to(standing(read=4, last=10), 4) is None
    assert rules.read_up_to(standing(read=4, last=10), 99) == (10, 4, 10)


def test_sending_reads_everything_before_it():
    reading = rules.read_on_send(standing(read=4, last=9), 10)
    assert (reading.mark, reading.after, reading.told, reading.tells) == (10, 4, 9, True)
    assert not rules.read_on_send(standing(read=9, last=9), 10).tells


def test_authors_still_in_the_chat_and_not_yet_told_are_told_once():
    rows = [(2, 3), (3, None), (1, 0), (4, 9), (2, 3), (5, 8)]
    assert rules.authors_to_tell(rows, reader_id=1, up_to=9) == [2, 5]


def test_unread_counts_others_messages_after_the_mark_and_the_history_start():
    after = rules.unread_after(3, 5)
    assert after == 5
    assert rules.counts_as_unread(msg(6, sender=2), 1, after, hidden=False)
    assert not rules.counts_as_unread(msg(6, sender=1), 1, after, hidden=False)
    assert not rules.counts_as_unread(msg(5, sender=2), 1, after, hidden=False)
    assert not rules.counts_as_unread(msg(6, sender=2, deleted=True), 1, after, hidden=False)
    assert not rules.counts_as_unread(msg(6, sender=2), 1, after, hidden=True)


@given(st.integers(0, 50), st.lists(st.integers(-5, 80), max_size=20))
def test_read_marks_are_monotone_and_bounded(last: int, asks: list[int]):
    mark = 0
    for max_id in asks:
        reading = rules.read_up_to(standing(read=mark, last=last), max_id)
        if reading is None:
            assert min(max_id, last) <= mark
            continue
        assert mark < reading.mark <= last and reading.mark <= max_id
        assert (reading.after, reading.told) == (mark, reading.mark)
        mark = reading.mark


# -- who is told ------------------------------------------------------------------------------
MEMBERS = [(1, 0), (2, 5), (3, 9), (4, 0)]  # (user, history_from)


def test_audiences():
    assert audience.members_in(audience.new_message(), MEMBERS) == [1, 2, 3, 4]
    # Someone who joined after a message never saw it, and must not be handed its edit.
    assert audience.members_in(audience.edit(6), MEMBERS) == [1, 2, 4]
    assert audience.members_in(audience.delete_for_everyone([3, 6, 4], 3), MEMBERS) == [
        1, 2, 3, 4]
    assert audience.members_in(audience.delete_for_everyone([3], 3), MEMBERS) == [1, 3, 4]
    assert audience.members_in(audience.only(9, 2), MEMBERS) == [2, 9]


def test_who_joined_right_after_a_message_never_saw_it():
    # Joining when message 6 was the last sets history_from = 6: it is not theirs.
    assert audience.members_in(audience.edit(6), [(1, 5), (2, 6)]) == [1]
    assert audience.members_in(audience.delete_for_everyone([6], 1), [(1, 5), (2, 6)]) == [1]


audiences = st.one_of(
    st.just(audience.Everyone()),
    st.builds(audience.SawMessage, st.integers(0, 20),
              st.lists(st.integers(1, 15), max_size=3).map(tuple)),
    st.builds(audience.Only, st.lists(st.integers(1, 15), max_size=4).map(tuple)),
)
member_lists = st.lists(st.tuples(st.integers(1, 12), st.integers(0, 20)),
                        unique_by=lambda m: m[0], max_size=10)


@given(audiences, member_lists)
def test_members_in_resolves_exactly_who_the_rule_includes(aud: audience.Audience,
                                                           members: list[tuple[int, int]]):
    got = audience.members_in(aud, members)
    assert len(got) == len(set(got))
    since = dict(members)
    for uid in set(got) | set(since) | set(getattr(aud, "also", ())) | set(
            getattr(aud, "user_ids", ())):
        assert (uid in got) == audience.includes(aud, uid, since.get(uid))


# -- what a chat looks like -------------------------------------------------------------------
CHAT = ChatRow(7, "group", "Pigeons", 3, 12)


def test_each_member_sees_their_own_role_and_the_departed_none():
    shaped = views.member_views(CHAT, [(1, "owner"), (2, "member"), (3, "member")], [4])
    assert [(v.role, uids) for v, uids in shaped] == [
        ("owner", [1]), ("member", [2, 3]), (None, [4])]
    assert all((v.id, v.title, v.member_count, v.last_message_id) == (7, "Pigeons", 3, 12)
               for v, _ in shaped)


def test_private_peer_and_invited_view():
    assert views.private_peer(3, [3, 5]) == 5
    assert views.private_peer(3, [3]) == 3  # a chat with oneself
    invited = views.invited_view(CHAT, 1)
    assert (invited.role, invited.invited_by, invited.title) == (None, 1, "Pigeons")
