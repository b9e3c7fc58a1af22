"""The protocol can grow (issue 8, deliverable 1), tested sans I/O.

* The envelope of a stream item round-trips; its body is read apart from it.
* Every union a server sends has a fallback: unknown frame types are skipped, unknown update
  bodies read as UnknownUpdate at their position, unknown enum values as "unknown", unknown
  error codes as the base error. Garbage is still a typed ProtocolError.
* The negotiated version decides what a connection gets: newer shapes are held back.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import encode, msgpack_values, valid

from pigeon import testing_shapes as shapes
from pigeon.protocol import limits, methods, versions
from pigeon.protocol import types as t
from pigeon.protocol import updates as up
from pigeon.protocol.errors import CODES, PigeonError, ProtocolError, error_from_wire
from pigeon.protocol.frames import (
    CallReceived,
    CallRejected,
    ClientProtocol,
    ErrorReceived,
    FrameSkipped,
    HelloReceived,
    Items,
    ItemsReceived,
    ResultReceived,
    ServerFrame,
    ServerProtocol,
    UpdatesReceived,
)
from pigeon.protocol.holdback import hold_back
from pigeon.protocol.methods import METHODS
from pigeon.protocol.streams import Item, item, item_overhead

STREAMS = st.from_regex(r"[a-z]{1,16}:[0-9]{1,20}", fullmatch=True)
SEQS = st.integers(0, 2**62)
KNOWN_TAGS = set(up.UPDATE_TYPES)
NEW_TAGS = st.text(min_size=1, max_size=20).filter(lambda s: s not in KNOWN_TAGS)


def speaking(version: int) -> ServerProtocol:
    server = ServerProtocol()
    assert isinstance(server.receive(encode({"t": "hello", "versions": [version]})),
                      HelloReceived)
    return server


def items_frame(items: list[Item]) -> bytes:
    return msgspec.msgpack.encode(Items(items=items))


# -- the envelope ---------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(entries=st.lists(st.tuples(STREAMS, SEQS, valid(up.AnyUpdate)), max_size=8))
def test_items_round_trip(entries: list[tuple[str, int, Any]]) -> None:
    event = ClientProtocol().receive(items_frame([item(s, q, u) for s, q, u in entries]))
    assert isinstance(event, ItemsReceived)
    assert [(i.stream, i.seq, i.body) for i in event.items] == entries


@settings(max_examples=100, deadline=None)
@given(updates=st.lists(valid(up.AnyUpdate), max_size=8), user_id=st.integers(1, 2**62))
def test_pushes_carry_their_stream_and_position(updates: list[Any], user_id: int) -> None:
    stream = f"user:{user_id}"
    received = []
    for frame in speaking(2).update_frames(updates, stream):
        event = ClientProtocol().receive(frame)
        assert isinstance(event, ItemsReceived)
        received += event.items
    assert [(i.stream, i.seq, i.body) for i in received] == [(stream, u.pts, u) for u in updates]


@given(stream=STREAMS, body=msgpack_values)
def test_the_item_overhead_bounds_every_envelope(stream: str, body: Any) -> None:
    raw = encode(body)
    envelope = len(encode(item(stream, 2**62, msgspec.Raw(raw)))) - len(raw)
    assert envelope <= item_overhead(stream)


# -- fallbacks: update bodies ---------------------------------------------------------------
def unknown_body(tag: str, seq: int, extra: Any) -> dict[str, Any]:
    return {"u": tag, "pts": seq, "whatever": extra}


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.tuples(STREAMS, SEQS, st.one_of(
    st.builds(unknown_body, NEW_TAGS, SEQS, msgpack_values),   # a later version's type
    msgpack_values,                                            # not an update at all
    valid(up.AnyUpdate))), max_size=8))
def test_any_body_reads_as_an_update_or_unknown_at_its_position(entries: list[Any]) -> None:
    frame = items_frame([item(s, q, msgspec.Raw(encode(b))) for s, q, b in entries])
    event = ClientProtocol().receive(frame)
    assert isinstance(event, ItemsReceived) and len(event.items) == len(entries)
    for got, (stream, seq, body) in zip(event.items, entries, strict=True):
        assert (got.stream, got.seq) == (stream, seq)
        if isinstance(body, up.Update):
            assert got.body == body
        else:
            assert isinstance(got.body, up.UnknownUpdate)
            assert got.body.pts == seq and got.body.raw == encode(body)
            if isinstance(body, dict) and body.get("u") not in KNOWN_TAGS \
                    and isinstance(body.get("u"), str):
                assert (got.body.type, got.body.error) == (body["u"], "")


def test_a_known_type_with_a_broken_body_is_unknown_and_says_why() -> None:
    body = up.read_update(encode({"u": "new_message", "pts": 3, "message": "not a message"}))
    assert isinstance(body, up.UnknownUpdate)
    assert (body.type, body.pts) == ("new_message", 3) and "new_message" in body.error


@settings(max_examples=100, deadline=None)
@given(updates=st.lists(st.one_of(valid(up.AnyUpdate).map(encode),
                                  st.builds(unknown_body, NEW_TAGS, SEQS, msgpack_values)
                                  .map(encode)), max_size=6))
def test_version_1_updates_frames_read_unknown_bodies_at_their_pts(updates: list[bytes]) -> None:
    frame = encode({"t": "updates", "updates": [msgspec.Raw(u) for u in updates]})
    event = ClientProtocol().receive(frame)
    assert isinstance(event, UpdatesReceived)
    assert [u.pts for u in event.updates] == [msgspec.msgpack.decode(u)["pts"]
                                              for u in updates]


def test_a_difference_holds_unknown_updates_instead_of_failing() -> None:
    client = ClientProtocol()
    request_id, _ = client.call("updates.get_difference", methods.GetDifference(pts=0))
    known = up.Typing(pts=1, chat_id=1, user_id=2)
    value = {"updates": [known, unknown_body("x_reaction", 2, None)],
             "state": {"pts": 2, "date": 0.0}}
    event = client.receive(ServerProtocol.result(request_id, value))
    assert isinstance(event, ResultReceived)
    assert event.value.updates[0] == known
    assert isinstance(event.value.updates[1], up.UnknownUpdate)
    assert event.value.updates[1].pts == 2


# -- fallbacks: frames ----------------------------------------------------------------------
@given(tag=st.text(max_size=20).filter(lambda s: s not in versions.FRAME_SINCE),
       rest=st.dictionaries(st.text(max_size=8), msgpack_values, max_size=3))
def test_a_frame_of_an_unknown_type_is_skipped(tag: str, rest: dict[str, Any]) -> None:
    event = ClientProtocol().receive(encode({**rest, "t": tag}))
    assert event == FrameSkipped(tag)


@pytest.mark.parametrize("frame", [
    {"t": 7}, {"no": "tag"}, [1, 2], {"t": "items", "items": [{"stream": "user:1"}]},
    {"t": "items", "items": [{"stream": "user:1", "seq": "one", "body": {}}]},
    {"t": "updates", "updates": 5}, {"t": "welcome"},
])
def test_a_frame_that_is_not_a_frame_is_still_a_protocol_error(frame: Any) -> None:
    with pytest.raises(ProtocolError):
        ClientProtocol().receive(encode(frame))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_items_frames_give_events_or_protocol_errors(data: st.DataObject) -> None:
    """Hostile or broken item frames: an event, or a typed ProtocolError; nothing else."""
    entries = data.draw(st.lists(st.tuples(STREAMS, SEQS, valid(up.AnyUpdate)), max_size=4))
    frame: dict[str, Any] = {"t": "items", "items": [
        {"stream": s, "seq": q, "body": msgspec.to_builtins(u)} for s, q, u in entries]}
    target = frame
    if entries and data.draw(st.booleans()):
        target = frame["items"][data.draw(st.integers(0, len(entries) - 1))]
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    target[key] = data.draw(msgpack_values)
    raw = bytearray(encode(frame))
    for _ in range(data.draw(st.integers(0, 2))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    try:
        event = ClientProtocol().receive(bytes(raw))
    except ProtocolError:
        return
    assert isinstance(event, (ItemsReceived, FrameSkipped, UpdatesReceived, ErrorReceived,
                              ResultReceived)) or type(event).__name__ == "WelcomeReceived"


# -- fallbacks: enums and error codes -------------------------------------------------------
@settings(max_examples=100)
@given(kind=st.text(max_size=12), role=st.text(max_size=12), who=st.text(max_size=12))
def test_enum_values_a_reader_does_not_know_read_as_unknown(kind: str, role: str,
                                                            who: str) -> None:
    chat = msgspec.msgpack.decode(encode({"id": 1, "kind": kind, "role": role}), type=t.Chat)
    member = msgspec.msgpack.decode(encode({"user": {"id": 1, "name": "A"}, "role": role}),
                                    type=t.Member)
    me = msgspec.msgpack.decode(encode({"user": {"id": 1, "name": "A"}, "phone": "+1",
                                        "who_can_add": who}), type=t.Me)
    for value, sent, enum in ((chat.kind, kind, "ChatKind"), (chat.role, role, "Role"),
                              (member.role, role, "Role"), (me.who_can_add, who, "WhoCanAdd")):
        assert value == (sent if sent in versions.ENUMS[enum] else t.UNKNOWN)


def test_a_chat_of_an_unknown_kind_in_an_update_does_not_fail_the_frame() -> None:
    body = {"u": "chat", "pts": 4, "chat": {"id": 9, "kind": "channel", "role": "subscriber"}}
    event = ClientProtocol().receive(items_frame([item("user:1", 4, msgspec.Raw(encode(body)))]))
    assert isinstance(event, ItemsReceived)
    chat = event.items[0].body.chat  # type: ignore[union-attr]
    assert (chat.kind, chat.role) == ("unknown", "unknown")


def test_what_a_client_sends_stays_a_closed_set() -> None:
    """The server is the authority: a role it does not know is refused, not taken."""
    server = speaking(2)
    event = server.receive(encode({"t": "call", "id": 1, "method": "chats.set_role",
                                   "params": {"chat_id": 1, "user_id": 2, "role": "unknown"}}))
    assert isinstance(event, CallRejected) and event.error.code == "INVALID_ARGUMENT"


@given(code=st.from_regex(r"[A-Z_]{1,30}", fullmatch=True).filter(lambda c: c not in CODES))
def test_an_unknown_error_code_is_the_base_error_with_its_code(code: str) -> None:
    error = error_from_wire(code, "from a later version", 1.5)
    assert type(error) is PigeonError and not error.retryable
    assert (error.code, error.message, error.retry_after) == (code, "from a later version", 1.5)
    event = ClientProtocol().receive(encode({"t": "error", "code": code, "message": "m"}))
    assert isinstance(event, ErrorReceived) and event.error.code == code


# -- versions -------------------------------------------------------------------------------
def test_the_versions_table_matches_the_schema() -> None:
    assert limits.PROTOCOL_VERSION == max(limits.SUPPORTED_VERSIONS) == 2
    frames = {msgspec.inspect.type_info(f).tag for f in typing.get_args(ServerFrame)}
    assert frames == set(versions.FRAME_SINCE)
    assert set(up.UPDATE_TYPES) == set(versions.UPDATE_SINCE)
    assert set(versions.METHOD_SINCE) <= set(METHODS)
    for enum, literal in (("ChatKind", t.ChatKind), ("Role", t.Role),
                          ("WhoCanAdd", t.WhoCanAdd)):
        assert set(typing.get_args(literal)) == set(versions.ENUMS[enum])
    assert t.UNKNOWN not in {v for e in versions.ENUMS.values() for v in e}


@pytest.mark.parametrize(("offered", "chosen"), [([1], 1), ([2], 2), ([1, 2], 2), ([2, 9], 2)])
def test_the_highest_common_version_is_chosen(offered: list[int], chosen: int) -> None:
    assert speaking(chosen).version == chosen
    server = ServerProtocol()
    event = server.receive(encode({"t": "hello", "versions": offered}))
    assert isinstance(event, HelloReceived) and event.version == chosen


def test_a_version_1_connection_has_no_version_2_methods() -> None:
    frame = encode({"t": "call", "id": 3, "method": "updates.get_stream_difference",
                    "params": {"stream": "user:1", "seq": 0}})
    event = speaking(1).receive(frame)
    assert isinstance(event, CallRejected) and event.error.code == "UNKNOWN_METHOD"
    assert isinstance(speaking(2).receive(frame), CallReceived)


@pytest.mark.parametrize("stream", ["user", "user:", ":1", "User:1", "user:-1", "user:1:2",
                                    "a" * 17 + ":1", "user:" + "9" * 21])
def test_a_stream_name_of_the_wrong_form_is_refused(stream: str) -> None:
    event = speaking(2).receive(encode({"t": "call", "id": 3, "method":
                                        "updates.get_stream_difference",
                                        "params": {"stream": stream, "seq": 0}}))
    assert isinstance(event, CallRejected) and event.error.code == "INVALID_ARGUMENT"
    assert "$.stream" in event.error.message


def test_nothing_is_held_back_while_nothing_is_newer() -> None:
    value = [t.Chat(id=1, kind="group"), up.Typing(pts=0, chat_id=1, user_id=1)]
    assert hold_back(value, 1) is value and hold_back(value, 2) is value


@pytest.fixture
def grown():
    """This process knows the test-only shapes of version 2 (pigeon.testing_shapes)."""
    with shapes.shapes_registered():
        yield


V1_UPDATE = msgspec.msgpack.Decoder(up.AnyUpdate)  # version 1's seven types, closed


def channel(chat_id: int = 5) -> t.Chat:
    return t.Chat(id=chat_id, kind=shapes.CHANNEL, role="owner")  # type: ignore[arg-type]


@pytest.mark.usefixtures("grown")
@settings(max_examples=100, deadline=None)
@given(known=st.lists(valid(up.AnyUpdate), max_size=4), pts=st.integers(1, 2**62))
def test_version_1_gets_every_update_at_its_pts_in_a_shape_it_knows(known: list[Any],
                                                                     pts: int) -> None:
    new = [shapes.Poke(pts=pts, note="x"), up.ChatUpdate(pts=pts, chat=channel())]
    server = speaking(1)
    for update in [*known, *new]:
        [frame] = server.update_frames([update], "user:1")
        [sent] = msgspec.msgpack.decode(frame)["updates"]
        read = V1_UPDATE.decode(encode(sent))  # decodes with version 1's closed union
        assert read.pts == update.pts
        if isinstance(update, up.ChatUpdate) and update.chat.kind != t.UNKNOWN:
            assert sent["chat"]["kind"] in ("private", "group")
    [frame] = server.update_frames(new, "user:1")
    poke, chat = (V1_UPDATE.decode(encode(u)) for u in msgspec.msgpack.decode(frame)["updates"])
    assert poke == up.DeleteMessages(pts=pts, chat_id=0, message_ids=[])
    assert isinstance(chat, up.ChatUpdate) and chat.chat.kind == "group"
    assert new[1].chat.kind == shapes.CHANNEL  # the original is not changed


@pytest.mark.usefixtures("grown")
def test_version_2_gets_new_shapes_as_they_are() -> None:
    new = [shapes.Poke(pts=3, note="x"), up.ChatUpdate(pts=4, chat=channel())]
    [frame] = speaking(2).update_frames(new, "user:1")
    sent = [msgspec.msgpack.decode(i["body"]) if isinstance(i["body"], bytes) else i["body"]
            for i in msgspec.msgpack.decode(frame)["items"]]
    assert [b["u"] for b in sent] == [shapes.POKE, "chat"]
    assert sent[1]["chat"]["kind"] == shapes.CHANNEL


@pytest.mark.usefixtures("grown")
def test_results_are_held_back_too() -> None:
    dialogs = [t.Dialog(chat=channel(1)), t.Dialog(chat=t.Chat(id=2, kind="private"))]
    held = hold_back(dialogs, 1)
    assert [d.chat.kind for d in held] == ["group", "private"]
    assert held[1] is dialogs[1] and dialogs[0].chat.kind == shapes.CHANNEL
    assert hold_back(dialogs, 2) is dialogs
    difference = up.Difference(updates=[shapes.Poke(pts=1)], state=t.State(pts=1, date=0.0))
    assert hold_back(difference, 1).updates == [
        up.DeleteMessages(pts=1, chat_id=0, message_ids=[])]


@pytest.mark.usefixtures("grown")
def test_the_reader_of_a_newer_process_knows_what_it_registered() -> None:
    chat = msgspec.msgpack.decode(encode(channel()), type=t.Chat)
    assert chat.kind == shapes.CHANNEL
    body = up.read_update(encode(shapes.Poke(pts=2, note="n")))
    assert body == shapes.Poke(pts=2, note="n")


def test_registered_shapes_are_forgotten_after_the_test() -> None:
    kinds = dict(versions.ENUMS["ChatKind"])  # supergroup came with version 2 (streams)
    with shapes.shapes_registered():
        assert versions.newest_shape() == 2
        assert shapes.CHANNEL in versions.ENUMS["ChatKind"]
    assert versions.newest_shape() == 2 and versions.ENUMS["ChatKind"] == kinds
    assert shapes.POKE not in up.UPDATE_TYPES
    assert isinstance(up.read_update(encode(shapes.Poke(pts=2))), up.UnknownUpdate)


def test_the_cli_shows_a_chat_of_an_unknown_kind_for_what_it_is(capsys) -> None:
    from pigeon.cli.main import _print_dialog

    body = encode({"chat": {"id": 9, "kind": "channel", "title": "News", "member_count": 3,
                            "role": "subscriber"}})
    _print_dialog(msgspec.msgpack.decode(body, type=t.Dialog), None)
    assert capsys.readouterr().out == "chat:9  News (unknown kind, 3 members, you: unknown)\n"
    _print_dialog(t.Dialog(chat=t.Chat(id=8, kind="group", title="G", member_count=2,
                                       role="admin")), None)
    assert capsys.readouterr().out == "chat:8  G (group, 2 members, you: admin)\n"
