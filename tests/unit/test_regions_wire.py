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
from pigeon.protocol.media import Media
from pigeon.protocol.types import FwdFrom, MessageSticker

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
digests = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
file_ids = st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
files = st.builds(w.CrossFile, id=file_ids, digest=digests,
                  size=st.integers(min_value=0, max_value=2**36), name=st.text(max_size=40),
                  kind=st.sampled_from(["photo", "document", "thumb"]),
                  thumb=st.none() | file_ids, parent=st.none() | file_ids)
media = st.none() | st.builds(Media, kind=st.sampled_from(["photo", "document"]),
                              file_id=file_ids, size=st.integers(0, 2**31))
stickers = st.none() | st.builds(MessageSticker, set=st.text(max_size=20),
                                 index=st.integers(1, 120), emoji=st.text(max_size=4),
                                 file_id=digests)
crosses = st.one_of(
    st.builds(w.CrossMessage, random_id=random_ids, text=texts, fwd_from=forwards,
              reply_to=st.none() | st.builds(w.MessageRef, ids, random_ids), media=media,
              files=st.lists(files, max_size=2), sticker=stickers,
              sticker_size=st.integers(0, 2**20), **common),
    st.builds(w.CrossEdit, random_id=random_ids, text=texts, **common),
    st.builds(w.CrossDelete, messages=st.lists(
        st.builds(w.MessageRef, ids, random_ids), min_size=1,
        max_size=limits.MAX_IDS_PER_CALL), **common),
    st.builds(w.CrossRead, random_id=random_ids, **common),
    st.builds(w.CrossPin, message=st.none() | st.builds(w.MessageRef, ids, random_ids),
              **common),
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
    | st.sampled_from(["edit", "delete", "read", "message", "pin"])))
def test_junk_of_the_new_kinds_is_refused_with_a_typed_error(junk: dict[str, object]) -> None:
    try:
        w.decode_cross(msgspec.msgpack.encode(junk))
    except InvalidArgument:
        pass


@given(st.builds(w.BlobAsk, digest=digests, offset=st.integers(0, 2**36),
                 length=st.integers(1, w.BLOB_CHUNK)),
       st.builds(w.BlobPart, found=st.booleans(), data=st.binary(max_size=64)))
def test_blob_requests_survive_the_wire(ask: w.BlobAsk, part: w.BlobPart) -> None:
    assert msgspec.msgpack.decode(w.encode(ask), type=w.BlobAsk) == ask
    assert msgspec.msgpack.decode(w.encode(part), type=w.BlobPart) == part


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
    for ask in ({"digest": "x", "offset": 0, "length": 1},
                {"digest": "ab" * 32, "offset": 0, "length": w.BLOB_CHUNK + 1},
                {"digest": "ab" * 32, "offset": -1, "length": 1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(ask), type=w.BlobAsk)
    too_many = [{"id": "f" * 22, "digest": "ab" * 32, "size": 1}] * 3
    with pytest.raises(InvalidArgument):
        w.cross_of("message", {"origin": "a", "sender": user, "recipient_id": 7,
                               "random_id": 1, "text": "", "date": 1.0, "files": too_many})


@given(st.builds(w.CrossTyping, origin=common["origin"], sender_id=ids, recipient_id=ids))
def test_typing_survives_the_wire(typing: w.CrossTyping) -> None:
    assert msgspec.msgpack.decode(w.encode(typing), type=w.CrossTyping) == typing


def test_a_pin_is_an_older_regions_unknown_kind() -> None:
    # what a region from before pins makes of one: the fallback, acknowledged and skipped
    older: msgspec.msgpack.Decoder[object] = msgspec.msgpack.Decoder(
        w.CrossMessage | w.CrossEdit | w.CrossDelete | w.CrossRead | w.UnknownCross)
    pin = w.encode(w.CrossPin(origin="a", sender=w.RemoteUser(id=5, name="A"),
                              recipient_id=7, date=1.0))
    with pytest.raises(msgspec.ValidationError) as refused:
        older.decode(pin)
    # what decode_cross turns into UnknownCross
    assert "Invalid value" in str(refused.value) and "$.type" in str(refused.value)


def test_an_outbox_row_from_before_kinds_is_a_message() -> None:
    # a row written before migration 15: kind defaults to "message", no body
    from pigeon.store.sqlite_regions import Queued  # noqa: PLC0415

    row = Queued(1, w.RemoteUser(id=5, name="A"), 7, -3, "hi", 1.0)
    assert w.cross_of(row.kind, {"origin": "a", **row.fields()}) == w.CrossMessage(
        origin="a", sender=w.RemoteUser(id=5, name="A"), recipient_id=7, random_id=-3,
        text="hi", date=1.0)


def test_sticker_sets_across_regions_are_bounded() -> None:
    from pigeon.media.stickers import MAX_STICKER_BYTES  # noqa: PLC0415

    assert w.MAX_STICKER_FILE_BYTES == MAX_STICKER_BYTES
    one = {"index": 1, "emoji": ["🦉"], "file_id": "ab" * 32, "width": 512, "height": 512,
           "size": 100}
    author = {"id": 5, "name": "Ada"}
    good = {"set": {"author": author, "name": "owls", "title": "Owls", "stickers": [one]}}
    found = msgspec.msgpack.decode(msgspec.msgpack.encode(good), type=w.SetFound)
    assert found.set is not None and found.set.stickers[0].size == 100
    for bad in ({**good["set"], "stickers": [one] * 121},
                {**good["set"], "name": "../etc"},
                {**good["set"], "stickers": [{**one, "size": w.MAX_STICKER_FILE_BYTES + 1}]},
                {**good["set"], "stickers": [{**one, "file_id": "../x"}]},
                {**good["set"], "stickers": [{**one, "emoji": ["x"] * 9}]}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode({"set": bad}), type=w.SetFound)
    for ask in ({"name": "a"}, {"name": "x" * 40}, {"name": "ow ls"}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(msgspec.msgpack.encode(ask), type=w.SetAsk)
