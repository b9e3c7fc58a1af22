"""Streams' rules (pigeon.domain.streams, paging.stream_page), without any database: names,
numbering, who reads which device inbox, what a newcomer sees of a chat's stream, pages."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import groups, paging, streams
from pigeon.domain.groups import GroupPolicy
from pigeon.protocol import updates as up
from pigeon.protocol.errors import InvalidArgument, NotFound
from pigeon.protocol.types import Chat, Message


def message(chat_id: int, message_id: int) -> Message:
    return Message(chat_id=chat_id, id=message_id, sender_id=1, date=0.0, text="t")


@given(st.sampled_from(["user", "chat", "device"]), st.integers(0, 2**62))
def test_names_parse_back(kind: str, ident: int) -> None:
    assert streams.parse(streams.name(kind, ident)) == (kind, ident)


@pytest.mark.parametrize("bad", ["", "chat", "chat:", ":5", "chat:-1", "chat:5x", "c4t:1"])
def test_a_malformed_name_is_invalid_argument(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        streams.parse(bad)


@given(st.lists(st.integers(0, 20), max_size=30))
def test_appends_number_gap_free_from_one(counts: list[int]) -> None:
    head, given_out = 0, []
    for count in counts:
        seqs = streams.allocate(head, count)
        assert len(seqs) == count
        given_out += list(seqs)
        head = seqs[-1] if seqs else head
    assert given_out == list(range(1, sum(counts) + 1))


def test_allocate_refuses_negative_counts() -> None:
    with pytest.raises(ValueError):
        streams.allocate(3, -1)


def test_only_its_own_device_reads_an_inbox() -> None:
    assert streams.device_reader("device:7", 7) == 7
    for other, session in (("device:8", 7), ("chat:7", 7), ("user:7", 7)):
        with pytest.raises(NotFound) as refused:
            streams.device_reader(other, session)
        assert refused.value.code == "STREAM_NOT_FOUND"


def test_envelope_bounds() -> None:
    streams.check_envelopes([b"x", b"y" * streams.MAX_DEVICE_ITEM_BYTES])
    for bad in ([b""], [b"x" * (streams.MAX_DEVICE_ITEM_BYTES + 1)],
                [b"x"] * (streams.MAX_ITEMS_PER_APPEND + 1)):
        with pytest.raises(InvalidArgument):
            streams.check_envelopes(bad)
    with pytest.raises(InvalidArgument):
        streams.check_devices(list(range(streams.MAX_DEVICES_PER_APPEND + 1)))


def test_only_supergroups_have_a_stream_and_their_own_limit() -> None:
    assert streams.on_chat_stream("supergroup")
    assert not any(streams.on_chat_stream(k) for k in ("group", "private", "unknown"))
    policy = GroupPolicy(max_supergroup_members=50_000)
    assert groups.member_limit("supergroup", 1000, policy) == 50_000
    assert groups.member_limit("group", 1000, policy) == 1000
    assert groups.member_limit("supergroup", 1000, None) == 1000  # the store's own tests


@given(st.integers(0, 50), st.integers(0, 50))
def test_reading_starts_at_joining_or_later(stream_from: int, asked: int) -> None:
    start = streams.first_readable(stream_from, asked)
    assert start >= stream_from and start >= asked and start in (stream_from, asked)


@given(history_from=st.integers(0, 20), message_id=st.integers(1, 40))
def test_a_newcomer_never_reads_an_edit_of_what_came_before_them(history_from: int,
                                                                 message_id: int) -> None:
    edit = up.EditMessage(pts=9, message=message(5, message_id))
    shown = streams.chat_item_for(edit, history_from)
    assert shown.pts == 9  # the position is kept either way
    if message_id <= history_from:
        assert shown == up.DeleteMessages(pts=9, chat_id=5, message_ids=[], for_everyone=True)
    else:
        assert shown is edit


@given(history_from=st.integers(0, 20), ids=st.lists(st.integers(1, 40), min_size=1, unique=True))
def test_a_deletion_names_only_what_the_reader_saw(history_from: int, ids: list[int]) -> None:
    deletion = up.DeleteMessages(pts=4, chat_id=5, message_ids=ids, for_everyone=True)
    shown = streams.chat_item_for(deletion, history_from)
    assert isinstance(shown, up.DeleteMessages) and shown.pts == 4
    assert shown.message_ids == [i for i in ids if i > history_from]


def test_the_chat_of_an_item() -> None:
    chat = Chat(id=3, kind="supergroup")
    assert streams.chat_of(up.ChatUpdate(pts=1, chat=chat)) == 3
    assert streams.chat_of(up.NewMessage(pts=1, message=message(4, 1))) == 4
    assert streams.chat_of(up.DeleteMessages(pts=1, chat_id=6, message_ids=[])) == 6


@given(count=st.integers(0, 30), after=st.integers(0, 5), limit=st.integers(1, 10),
       max_bytes=st.integers(1, 400))
def test_stream_pages_never_stall_and_reach_the_head(count: int, after: int, limit: int,
                                                     max_bytes: int) -> None:
    head = after + count
    rows = [(seq, msgspec.Raw(msgspec.msgpack.encode("x" * 20))) for seq in
            range(after + 1, head + 1)]
    seen: list[int] = []
    position = after
    for _ in range(count + 1):
        items, reached, more = paging.stream_page(
            iter([r for r in rows if r[0] > position]), position, head, limit, max_bytes)
        assert len(items) <= limit
        seen += [seq for seq, _ in items]
        assert reached >= position
        position = reached
        if not more:
            break
        assert items and reached == items[-1][0]  # while more, the page moved on
    assert seen == list(range(after + 1, head + 1)) and position == head
