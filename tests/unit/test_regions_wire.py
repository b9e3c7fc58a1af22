"""What crosses regions (pigeon/protocol/regions.py): every kind survives the wire as it
was, an outbox row's columns and body make the same struct, and junk is refused with
InvalidArgument (never anything else) or, for a kind not known here, skipped."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.protocol import limits
from pigeon.protocol import regions as w
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.types import FwdFrom

ids = st.integers(min_value=1, max_value=2**62)
random_ids = st.integers(min_value=-(2**63), max_value=2**63 - 1)
dates = st.floats(min_value=0, max_value=limits.MAX_DATE, allow_nan=False)
texts = st.text(max_size=200)
users = st.builds(w.RemoteUser, id=ids, name=st.text(max_size=limits.MAX_NAME_CHARS),
                  username=st.none() | st.from_regex(r"[a-z][a-z0-9_]{4,20}", fullmatch=True))
common = {"origin": st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True),
          "sender": users, "recipient_id": ids, "date": dates}
forwards = st.none() | st.builds(FwdFrom, sender_id=ids, chat_id=ids, message_id=ids,
                                 date=dates)
crosses = st.one_of(
    st.builds(w.CrossMessage, random_id=random_ids, text=texts, fwd_from=forwards,
              reply_to=st.none() | st.builds(w.MessageRef, ids, random_ids), **common),
    st.builds(w.CrossEdit, random_id=random_ids, text=texts, **common),
    st.builds(w.CrossDelete, messages=st.lists(
        st.builds(w.MessageRef, ids, random_ids), min_size=1,
        max_size=limits.MAX_IDS_PER_CALL), **common),
    st.builds(w.CrossRead, random_id=random_ids, **common),
)


@given(crosses)
def test_every_kind_survives_the_wire(cross: w.Cross) -> None:
    assert w.decode_cross(w.encode(cross)) == cross


@given(crosses)
def test_an_outbox_row_makes_the_struct_it_was_made_from(cross: w.Cross) -> None:
    # what the relay does with a row: its columns and body's fields as builtins, its kind
    fields = msgspec.to_builtins(cross)
    kind = fields.pop("type")
    assert w.cross_of(kind, {**fields, "sender": cross.sender}) == cross


@given(st.binary(max_size=300))
def test_junk_is_refused_with_a_typed_error(data: bytes) -> None:
    try:
        w.decode_cross(data)
    except InvalidArgument:
        pass


@given(st.dictionaries(st.sampled_from(
    ["type", "origin", "sender", "recipient_id", "random_id", "text", "date", "messages"]),
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
    | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)
    | st.sampled_from(["edit", "delete", "read", "message"])))
def test_junk_of_the_new_kinds_is_refused_with_a_typed_error(junk: dict[str, object]) -> None:
    try:
        w.decode_cross(msgspec.msgpack.encode(junk))
    except InvalidArgument:
        pass


def test_bounds_of_the_new_kinds() -> None:
    user = w.RemoteUser(id=5, name="A")
    too_many = [w.MessageRef(5, i) for i in range(limits.MAX_IDS_PER_CALL + 1)]
    for bad in (w.CrossDelete(origin="a", sender=user, recipient_id=7, messages=[], date=1.0),
                w.CrossDelete(origin="a", sender=user, recipient_id=7, messages=too_many,
                              date=1.0),
                w.CrossEdit(origin="a", sender=user, recipient_id=7, random_id=1,
                            text="x" * (limits.MAX_TEXT_CHARS + 1), date=1.0)):
        with pytest.raises(InvalidArgument):
            w.decode_cross(w.encode(bad))
    with pytest.raises(InvalidArgument):
        w.cross_of("read", {"origin": "a", "sender": user, "recipient_id": 7, "date": 1.0})
    with pytest.raises(InvalidArgument):
        w.cross_of("poll", {"origin": "a"})
