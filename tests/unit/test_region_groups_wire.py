"""What crosses regions for a group spanning them (pigeon/protocol/regions.py, the group
kinds; pigeon/protocol/region_groups.py, forwarded calls): every kind survives the wire and
an outbox row makes it again, junk is refused with InvalidArgument, and every new field is
bounded."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_regions_wire import (
    common,
    files,
    forwards,
    ids,
    media,
    random_ids,
    stickers,
    texts,
    users,
)

from pigeon.protocol import limits
from pigeon.protocol import regions as w
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.region_groups import GroupAnswer, GroupCall, GroupSend

regions = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
members = st.builds(w.GroupMember, user=users, role=st.sampled_from(["owner", "admin", "member"]),
                    joined=st.floats(0, limits.MAX_DATE), history_from=st.integers(0, 2**62),
                    home=st.none() | regions)
refs = st.builds(w.MessageRef, ids, random_ids)
group_kinds = st.one_of(
    st.builds(w.CrossGroup, kind=st.sampled_from(["group", "supergroup"]),
              title=st.text(max_size=limits.MAX_TITLE_CHARS), created=st.floats(0, 2**31),
              member_count=st.integers(0, limits.MAX_GROUP_MEMBERS),
              last_message_id=st.integers(0, 2**62),
              joined=st.lists(members, max_size=w.GROUP_PART),
              left=st.lists(ids, max_size=w.GROUP_PART), secret=st.booleans(), **common),
    st.builds(w.CrossGroupMessage, random_id=random_ids, text=texts, fwd_from=forwards,
              reply_to=st.none() | refs, media=media, files=st.lists(files, max_size=2),
              sticker=stickers, message_id=ids,
              ciphertext=st.none() | st.binary(min_size=1, max_size=64), **common),
    st.builds(w.CrossGroupEdit, random_id=random_ids, text=texts, **common),
    st.builds(w.CrossGroupDelete, messages=st.lists(refs, min_size=1,
                                                    max_size=limits.MAX_IDS_PER_CALL), **common),
    st.builds(w.CrossGroupRead, message_id=ids, **common),
)


@given(group_kinds)
def test_every_group_kind_survives_the_wire_and_the_outbox(cross: w.Cross) -> None:
    assert w.decode_cross(w.encode(cross)) == cross
    fields = msgspec.to_builtins(cross)
    kind = fields.pop("type")
    assert kind in w.KINDS
    assert w.cross_of(kind, {**fields, "sender": cross.sender}) == cross


@given(st.dictionaries(st.sampled_from(
    ["type", "origin", "sender", "recipient_id", "random_id", "text", "date", "joined", "left",
     "kind", "title", "created", "member_count", "last_message_id", "message_id"]),
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
    | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)
    | st.sampled_from(["group", "group_message", "group_edit", "group_delete", "group_read"])))
def test_junk_of_the_group_kinds_is_refused_with_a_typed_error(junk: dict[str, object]) -> None:
    try:
        w.decode_cross(msgspec.msgpack.encode(junk))
    except InvalidArgument:
        pass


@given(st.builds(GroupCall, origin=regions, actor_id=ids,
                 method=st.sampled_from(["messages.send", "chats.add_members"]),
                 params=st.binary(max_size=200), people=st.lists(users, max_size=3)),
       st.builds(GroupAnswer, result=st.none() | st.binary(max_size=100),
                 code=st.none() | st.sampled_from(["NOT_A_MEMBER", "NOT_ADMIN"]),
                 message=st.text(max_size=50)))
def test_forwarded_calls_survive_the_wire(call: GroupCall, answer: GroupAnswer) -> None:
    assert msgspec.msgpack.decode(w.encode(call), type=GroupCall) == call
    assert msgspec.msgpack.decode(w.encode(answer), type=GroupAnswer) == answer


def _refused(value: dict[str, object], into: type[object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(value), type=into)


def test_bounds_of_the_group_fields() -> None:
    user = {"id": 5, "name": "A"}
    member = {"user": user, "role": "member", "joined": 1.0, "history_from": 0}
    group = {"type": "group", "origin": "a", "sender": user, "recipient_id": 7, "date": 1.0,
             "kind": "group", "title": "t", "created": 1.0, "member_count": 1,
             "last_message_id": 0}
    w.decode_cross(msgspec.msgpack.encode(group))  # the base is fine
    for bad in ({"joined": [member] * (w.GROUP_PART + 1)},
                {"left": [5] * (w.GROUP_PART + 1)},
                {"left": [0]},
                {"title": "x" * (limits.MAX_TITLE_CHARS + 1)},
                {"kind": "private"},
                {"member_count": limits.MAX_GROUP_MEMBERS + 1},
                {"last_message_id": -1},
                {"joined": [{**member, "role": "god"}]},
                {"joined": [{**member, "history_from": -1}]},
                {"joined": [{**member, "home": "Not A Region"}]},
                {"sender": {"id": 5, "name": "A", "who_can_add": "anyone"}}):
        with pytest.raises(InvalidArgument):
            w.decode_cross(msgspec.msgpack.encode({**group, **bad}))
    message = {"type": "group_message", "origin": "a", "sender": user, "recipient_id": 7,
               "random_id": 1, "text": "", "date": 1.0}
    for bad in ({}, {"message_id": 0}, {"message_id": 2**62 + 1},
                {"message_id": 1, "ciphertext": b""},
                {"message_id": 1, "ciphertext": b"x" * (limits.MAX_MESSAGE_CIPHERTEXT_BYTES + 1)}):
        with pytest.raises(InvalidArgument):
            w.decode_cross(msgspec.msgpack.encode({**message, **bad}))
    biggest = {**message, "message_id": 2**62, "text": "",
               "ciphertext": b"x" * limits.MAX_MESSAGE_CIPHERTEXT_BYTES}
    assert len(msgspec.msgpack.encode(biggest)) < limits.MAX_FRAME_BYTES  # one stream message
    w.decode_cross(msgspec.msgpack.encode(biggest))
    read = {"type": "group_read", "origin": "a", "sender": user, "recipient_id": 7,
            "date": 1.0}
    for bad in ({}, {"message_id": 0}, {"message_id": 2**62 + 1}):
        with pytest.raises(InvalidArgument):
            w.decode_cross(msgspec.msgpack.encode({**read, **bad}))
    call = {"origin": "b", "actor_id": 5, "method": "messages.send", "params": b""}
    msgspec.msgpack.decode(msgspec.msgpack.encode(call), type=GroupCall)
    # a method this version does not know decodes (and is answered NOT_SUPPORTED_...)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode({**call, "method": "x.y"}),
                                  type=GroupCall).method == "x.y"
    for bad in ({"method": "x" * 65}, {"actor_id": 0}, {"origin": "B"},
                {"params": b"x" * (limits.MAX_FRAME_BYTES + 1)},
                {"people": [user] * (limits.MAX_IDS_PER_CALL + 1)}):
        _refused({**call, **bad}, GroupCall)
    _refused({"code": "X" * 65}, GroupAnswer)
    _refused({"message": "x" * 1001}, GroupAnswer)
    _refused({"retry_after": -1.0}, GroupAnswer)
    for bad_send in ({"chat_id": 0, "random_id": 1}, {"chat_id": 1, "random_id": 2**63},
                     {"chat_id": 1, "random_id": 1, "text": "x" * (limits.MAX_TEXT_CHARS + 1)},
                     {"chat_id": 1, "random_id": 1, "reply_to": 0},
                     {"chat_id": 1, "random_id": 1, "ciphertext": b""},
                     {"chat_id": 1, "random_id": 1,
                      "ciphertext": b"x" * (limits.MAX_MESSAGE_CIPHERTEXT_BYTES + 1)}):
        _refused(bad_send, GroupSend)


@given(st.builds(GroupSend, chat_id=ids, random_id=random_ids, text=texts,
                 files=st.lists(files, max_size=2), sticker=stickers,
                 sticker_size=st.integers(0, 2**20), blobs_from=st.text(max_size=200)))
def test_a_send_with_files_survives_the_wire(send: GroupSend) -> None:
    assert msgspec.msgpack.decode(w.encode(send), type=GroupSend) == send
    assert send.blobs() == w.blobs_of(send.files, send.sticker, send.sticker_size)


def test_bounds_of_a_send_with_files() -> None:
    row = {"id": "f" * 16, "digest": "0" * 64, "size": 1}
    send = {"chat_id": 1, "random_id": 1}
    msgspec.msgpack.decode(msgspec.msgpack.encode({**send, "files": [row] * 2}), type=GroupSend)
    for bad in ({"files": [row] * 3}, {"sticker_size": -1}, {"blobs_from": "x" * 201},
                {"files": [{**row, "digest": "x"}]}):
        _refused({**send, **bad}, GroupSend)
