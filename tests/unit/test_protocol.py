"""The sans-I/O protocol (pigeon.protocol.frames): both ends, fed bytes, no sockets.

The server's ``receive`` must turn anything a peer sends into a typed event (and a typed
error frame to send back), never an exception; the client and server must agree on every
method's params and result.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import encode, msgpack_values, valid

from pigeon.protocol import limits, methods
from pigeon.protocol import updates as up
from pigeon.protocol.errors import (
    CODES,
    InvalidArgument,
    PigeonError,
    ProtocolError,
    RateLimited,
    UnknownMethod,
    WrongRegion,
)
from pigeon.protocol.frames import (
    CallReceived,
    CallRejected,
    ClientProtocol,
    ErrorReceived,
    FrameSkipped,
    HelloReceived,
    ItemsReceived,
    Phase,
    ResultReceived,
    ServerProtocol,
    UpdatesReceived,
    Violation,
    WelcomeReceived,
)
from pigeon.protocol.methods import METHODS
from pigeon.protocol.types import Budget, Message, State, User

METHOD_NAMES = sorted(METHODS)
SERVER_EVENTS = (HelloReceived, CallReceived, CallRejected, Violation)


def open_pair() -> tuple[ClientProtocol, ServerProtocol]:
    """A client and a server past the hello."""
    client, server = ClientProtocol(), ServerProtocol()
    event = server.receive(client.hello())
    assert isinstance(event, HelloReceived)
    return client, server


def call_frame(method: str, params: Any, request_id: int = 1) -> bytes:
    """A call frame built by hand, so that its params can be anything at all."""
    return encode({"t": "call", "id": request_id, "method": method, "params": params})


def reply_error(reply: bytes) -> ErrorReceived:
    """What a client makes of an error frame the server sends back."""
    event = ClientProtocol().receive(reply)
    assert isinstance(event, ErrorReceived)
    return event


def rejected(event: Any, code: str) -> CallRejected:
    assert isinstance(event, CallRejected), event
    assert event.error.code == code, event.error
    answer = reply_error(event.reply)
    assert (answer.id, answer.error.code) == (event.id, code)
    return event


# -- round trips of every method --------------------------------------------------------------
@pytest.mark.parametrize("method", METHOD_NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_params_round_trip(method: str, data: st.DataObject) -> None:
    params = data.draw(valid(METHODS[method].params), label="params")
    client, server = open_pair()
    request_id, frame = client.call(method, params)
    event = server.receive(frame)
    assert event == CallReceived(request_id, method, params)
    assert type(event.params) is METHODS[method].params


@pytest.mark.parametrize("method", METHOD_NAMES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_result_frame_decodes_to_the_typed_result(method: str, data: st.DataObject) -> None:
    params = data.draw(valid(METHODS[method].params), label="params")
    value = data.draw(valid(METHODS[method].result), label="result")
    client, server = open_pair()
    request_id, frame = client.call(method, params)
    call = server.receive(frame)
    assert isinstance(call, CallReceived)
    event = client.receive(server.result(call.id, value))
    assert event == ResultReceived(request_id, value)


def test_every_method_has_params_and_a_result_type() -> None:
    for name, method in METHODS.items():
        assert issubclass(method.params, methods.Params), name
        msgspec.msgpack.Decoder(method.result)  # a type msgspec can decode
        assert methods.METHOD_OF[method.params] == name  # one method per params class


def test_request_ids_count_up_and_unknown_methods_are_refused_locally() -> None:
    client = ClientProtocol()
    first, _ = client.call("updates.get_state", methods.GetState())
    with pytest.raises(UnknownMethod):
        client.call("no.such_method", methods.GetState())
    second, _ = client.call("updates.get_state", methods.GetState())
    assert (first, second) == (1, 2)


# -- hello and versions ---------------------------------------------------------------------
def test_hello_negotiates_a_version() -> None:
    server = ServerProtocol()
    event = server.receive(encode({"t": "hello", "versions": [99, *limits.SUPPORTED_VERSIONS],
                                   "client": "test", "token": "tok"}))
    assert event == HelloReceived(max(limits.SUPPORTED_VERSIONS), "test", "tok")
    assert (server.phase, server.version) == (Phase.OPEN, max(limits.SUPPORTED_VERSIONS))
    welcome = ClientProtocol().receive(server.welcome("pigeon", None, None, None))
    assert isinstance(welcome, WelcomeReceived)
    assert welcome.welcome.version == server.version


def test_welcome_carries_user_and_state() -> None:
    _, server = open_pair()
    user = User(id=7, name="Ann", username="ann_1")
    event = ClientProtocol().receive(server.welcome("pigeon/1", user, 3, State(pts=5, date=1.5)))
    assert isinstance(event, WelcomeReceived)
    assert (event.welcome.user, event.welcome.session_id, event.welcome.state) == (
        user, 3, State(pts=5, date=1.5))


@given(calls=st.floats(0.001, 1e6), call_burst=st.integers(1, 10**6),
       sends=st.floats(0.001, 1e6), send_burst=st.integers(1, 10**6))
def test_welcome_carries_the_budget_and_old_peers_ignore_it(
        calls: float, call_burst: int, sends: float, send_burst: int) -> None:
    _, server = open_pair()
    budget = Budget(calls_per_second=calls, call_burst=call_burst, sends_per_second=sends,
                    send_burst=send_burst)
    frame = server.welcome("pigeon/1", None, None, None, budget)
    event = ClientProtocol().receive(frame)
    assert isinstance(event, WelcomeReceived) and event.welcome.budget == budget
    # An SDK from before the field (Welcome without it) still decodes the frame.
    class OldWelcome(msgspec.Struct, tag_field="t", tag="welcome"):
        version: int
        server: str
    assert msgspec.msgpack.decode(frame, type=OldWelcome).server == "pigeon/1"
    # and a server from before it sends none: the SDK keeps its defaults
    assert ClientProtocol().receive(server.welcome("old", None, None, None)).welcome.budget is None


@pytest.mark.parametrize("versions", [[99], [], [0], [limits.PROTOCOL_VERSION + 1000]])
def test_unsupported_version(versions: list[int]) -> None:
    server = ServerProtocol()
    event = server.receive(encode({"t": "hello", "versions": versions}))
    assert isinstance(event, Violation) and event.close
    assert event.error.code == "UNSUPPORTED_VERSION"
    assert isinstance(event.error, ProtocolError)
    assert reply_error(event.reply).error.code == "UNSUPPORTED_VERSION"
    assert server.phase is Phase.CLOSED


def test_call_before_hello() -> None:
    server = ServerProtocol()
    _, frame = ClientProtocol().call("updates.get_state", methods.GetState())
    event = server.receive(frame)
    assert isinstance(event, Violation) and event.close
    assert event.error.code == "HELLO_REQUIRED"
    answer = reply_error(event.reply)
    assert (answer.id, answer.error.code) == (None, "HELLO_REQUIRED")
    assert server.phase is Phase.CLOSED


def test_second_hello_is_a_violation_but_not_fatal() -> None:
    client, server = open_pair()
    event = server.receive(client.hello())
    assert isinstance(event, Violation) and not event.close
    assert event.error.code == "MALFORMED_FRAME"
    _, frame = client.call("updates.get_state", methods.GetState())
    assert isinstance(server.receive(frame), CallReceived)


# -- frame size -----------------------------------------------------------------------------
def test_oversized_frame_closes_the_connection() -> None:
    client, server = open_pair()
    event = server.receive(b"\x00" * (limits.MAX_FRAME_BYTES + 1))
    assert isinstance(event, Violation) and event.close
    assert event.error.code == "FRAME_TOO_LARGE"
    assert reply_error(event.reply).error.code == "FRAME_TOO_LARGE"
    assert server.phase is Phase.CLOSED
    # Nothing more is parsed on a closed connection.
    _, frame = client.call("updates.get_state", methods.GetState())
    after = server.receive(frame)
    assert isinstance(after, Violation) and after.close


@given(size=st.integers(1, 300), limit=st.integers(16, 200))
def test_frame_size_limit_is_exact(size: int, limit: int) -> None:
    """A frame at the limit is parsed (here: garbage, so MALFORMED); one byte more is not."""
    server = ServerProtocol(max_frame_bytes=limit)
    event = server.receive(b"\xc1" * size)  # 0xc1: never valid MessagePack
    assert isinstance(event, Violation)
    if size > limit:
        assert (event.error.code, event.close) == ("FRAME_TOO_LARGE", True)
    else:
        assert (event.error.code, event.close) == ("MALFORMED_FRAME", False)


def test_a_large_but_legal_frame_passes() -> None:
    client, server = open_pair()
    text = "\U0001f426" * limits.MAX_TEXT_CHARS  # 4 bytes each in UTF-8: 16 KiB of text
    _, frame = client.call("messages.send", methods.SendMessage(chat_id=1, random_id=1, text=text))
    assert len(frame) < limits.MAX_FRAME_BYTES
    event = server.receive(frame)
    assert isinstance(event, CallReceived) and event.params.text == text


# -- anything at all ------------------------------------------------------------------------
def check_event(event: Any) -> None:
    """Every event is typed; every refusal carries a reply the client decodes to the same
    code (never INTERNAL, which would mean an unexpected failure)."""
    assert isinstance(event, SERVER_EVENTS), event
    if isinstance(event, (CallRejected, Violation)):
        assert isinstance(event.error, PigeonError)
        assert event.error.code in CODES and event.error.code != "INTERNAL"
        answer = reply_error(event.reply)
        assert answer.error.code == event.error.code
        assert type(answer.error) is type(event.error)
        if isinstance(event, CallRejected):
            assert answer.id == event.id


@settings(max_examples=300)
@given(data=st.binary(max_size=512), said_hello=st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, said_hello: bool) -> None:
    server = open_pair()[1] if said_hello else ServerProtocol()
    check_event(server.receive(data))


@settings(max_examples=300)
@given(value=msgpack_values, said_hello=st.booleans())
def test_arbitrary_msgpack_never_raises(value: Any, said_hello: bool) -> None:
    server = open_pair()[1] if said_hello else ServerProtocol()
    check_event(server.receive(encode(value)))


@settings(max_examples=300)
@given(method=st.sampled_from(METHOD_NAMES) | st.text(max_size=70),
       request_id=st.integers(-5, 2**64 - 1), params=msgpack_values)
def test_calls_with_arbitrary_params_never_raise(method: str, request_id: int,
                                                 params: Any) -> None:
    _, server = open_pair()
    check_event(server.receive(call_frame(method, params, request_id)))


@settings(max_examples=100)
@given(frames=st.lists(st.binary(max_size=64) | msgpack_values.map(encode), max_size=40))
def test_a_stream_of_garbage_ends_in_a_close(frames: list[bytes]) -> None:
    """A hostile peer cannot keep the server parsing garbage forever."""
    _, server = open_pair()
    violations = 0
    for frame in frames:
        event = server.receive(frame)
        check_event(event)
        if isinstance(event, Violation):
            violations += 1
            if event.close:
                break
    assert violations <= ServerProtocol.max_violations


def test_violations_close_after_the_limit() -> None:
    _, server = open_pair()
    events = [server.receive(b"\xc1") for _ in range(ServerProtocol.max_violations)]
    assert all(isinstance(e, Violation) for e in events)
    assert [e.close for e in events] == [False] * (ServerProtocol.max_violations - 1) + [True]
    assert server.phase is Phase.CLOSED


@pytest.mark.parametrize("depth", [100, 10_000, 60_000])
def test_deeply_nested_input_is_a_typed_error(depth: int) -> None:
    """msgspec raises RecursionError on deep nesting; it must not escape ``receive``."""
    nested = b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]
    _, server = open_pair()
    # as a whole frame, inside an unknown field of a frame, and as a call's params
    hello = encode({"t": "hello", "versions": [1]})
    for frame in (nested, b"\x83" + hello[1:] + encode("x") + nested):
        check_event(ServerProtocol().receive(frame))
    head = encode({"t": "call", "id": 9, "method": "messages.send"})
    # (Whether the frame decoder or the params decoder gives up first is msgspec's business:
    # a rejected call or a violation, either is a typed answer.)
    check_event(server.receive(b"\x84" + head[1:] + encode("params") + nested))


# -- typed refusals of calls ----------------------------------------------------------------
def test_unknown_method() -> None:
    client, server = open_pair()
    event = rejected(server.receive(call_frame("messages.explode", {}, request_id=77)),
                     "UNKNOWN_METHOD")
    assert event.id == 77
    assert isinstance(event.error, UnknownMethod)
    assert "messages.explode" in event.error.message
    # The connection carries on.
    _, frame = client.call("updates.get_state", methods.GetState())
    assert isinstance(server.receive(frame), CallReceived)


@pytest.mark.parametrize(("method", "params", "path"), [
    ("messages.send", {"chat_id": "1", "random_id": 1, "text": "x"}, "$.chat_id"),
    ("messages.send", {"chat_id": 1, "random_id": 1, "text": 5}, "$.text"),
    ("messages.send", {"chat_id": 0, "random_id": 1, "text": "x"}, "$.chat_id"),
    ("messages.send", {"chat_id": 1, "random_id": 2**64 - 1, "text": "x"}, "$.random_id"),
    ("messages.delete", {"chat_id": 1, "message_ids": [1, "2"]}, "$.message_ids[1]"),
    ("messages.delete", {"chat_id": 1, "message_ids": [1, -3]}, "$.message_ids[1]"),
    ("messages.delete", {"chat_id": 1, "message_ids": 1}, "$.message_ids"),
    ("chats.set_role", {"chat_id": 1, "user_id": 2, "role": "king"}, "$.role"),
    ("chats.members", {"chat_id": 1, "limit": 10_000}, "$.limit"),
    ("updates.get_difference", {"pts": -1}, "$.pts"),
    ("account.set_privacy", {"phone_discoverable": "yes"}, "$.phone_discoverable"),
])
def test_wrong_types_name_the_path(method: str, params: Any, path: str) -> None:
    _, server = open_pair()
    event = rejected(server.receive(call_frame(method, params, request_id=5)),
                     "INVALID_ARGUMENT")
    assert isinstance(event.error, InvalidArgument)
    assert path in event.error.message, event.error.message
    assert event.id == 5


@pytest.mark.parametrize("method", ["messages.send", "chats.open_private", "auth.send_code"])
def test_missing_required_field_is_named(method: str) -> None:
    _, server = open_pair()
    event = rejected(server.receive(call_frame(method, {})), "INVALID_ARGUMENT")
    required = [f.name for f in msgspec.structs.fields(METHODS[method].params)
                if f.required]
    assert required and any(name in event.error.message for name in required)


def test_params_must_be_a_map() -> None:
    _, server = open_pair()
    rejected(server.receive(call_frame("messages.send", [1, 2, 3])), "INVALID_ARGUMENT")


def test_unknown_fields_are_ignored() -> None:
    """Schema evolution: a newer client's extra fields do not break an older server."""
    _, server = open_pair()
    event = server.receive(call_frame("chats.get", {"chat_id": 3, "added_in_v9": [1, 2]}))
    assert event == CallReceived(1, "chats.get", methods.GetChat(chat_id=3))


BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ab\xe2\x82"]  # incl. a lone surrogate


@pytest.mark.parametrize("bad", BAD_UTF8)
def test_invalid_utf8_in_params_is_a_typed_error(bad: bytes) -> None:
    _, server = open_pair()
    head = encode({"t": "call", "id": 4, "method": "messages.send"})
    params = (b"\x83" + encode("chat_id") + encode(1) + encode("random_id") + encode(1)
              + encode("text") + bytes([0xA0 | len(bad)]) + bad)
    event = server.receive(b"\x84" + head[1:] + encode("params") + params)
    rejected(event, "INVALID_ARGUMENT")


@pytest.mark.parametrize("bad", BAD_UTF8)
def test_invalid_utf8_in_the_frame_is_a_typed_error(bad: bytes) -> None:
    _, server = open_pair()
    frame = (b"\x83" + encode("t") + encode("call") + encode("id") + encode(1)
             + encode("method") + bytes([0xA0 | len(bad)]) + bad)
    event = server.receive(frame)
    assert isinstance(event, Violation) and event.error.code == "MALFORMED_FRAME"


@pytest.mark.parametrize("method", ["messages.send", "messages.edit"])
def test_text_length_limit(method: str) -> None:
    base = {"chat_id": 1, "random_id": 1} if method == "messages.send" else {
        "chat_id": 1, "message_id": 1}
    _, server = open_pair()
    for char in ("a", "\U0001f426"):  # counted in code points, not bytes
        exact = char * limits.MAX_TEXT_CHARS
        event = server.receive(call_frame(method, {**base, "text": exact}))
        assert isinstance(event, CallReceived) and event.params.text == exact
        event = server.receive(call_frame(method, {**base, "text": exact + char}))
        rejected(event, "INVALID_ARGUMENT")


def test_request_id_bounds() -> None:
    _, server = open_pair()
    event = server.receive(call_frame("updates.get_state", {}, limits.MAX_REQUEST_ID))
    assert isinstance(event, CallReceived) and event.id == limits.MAX_REQUEST_ID
    for bad in (limits.MAX_REQUEST_ID + 1, -1):
        event = server.receive(call_frame("updates.get_state", {}, bad))
        assert isinstance(event, Violation) and event.error.code == "MALFORMED_FRAME"


# -- the client side ------------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(CODES))
def test_error_frames_rebuild_the_servers_exception(code: str) -> None:
    client, _ = open_pair()
    request_id, _ = client.call("updates.get_state", methods.GetState())
    error = CODES[code]("explained", code=code, retry_after=2.5)
    event = client.receive(ServerProtocol.error(request_id, error))
    assert isinstance(event, ErrorReceived) and event.id == request_id
    assert type(event.error) is CODES[code]
    assert (event.error.code, event.error.message, event.error.retry_after) == (
        code, "explained", 2.5)
    # The call is settled: a late result for it is a protocol error.
    with pytest.raises(ProtocolError):
        client.receive(ServerProtocol.result(request_id, State(pts=1, date=0.0)))


def test_wrong_region_carries_its_endpoints() -> None:
    """WRONG_REGION's endpoints travel in the error frame's own field (the SDK connects to
    them), at most 16; other errors leave the field out, so older readers see nothing new."""
    client, _ = open_pair()
    request_id, _ = client.call("updates.get_state", methods.GetState())
    there = [f"wss://us-{n}.example:8700/v1/ws" for n in range(20)]
    frame = ServerProtocol.error(request_id, WrongRegion("lives in region us", endpoints=there))
    event = client.receive(frame)
    assert isinstance(event, ErrorReceived) and isinstance(event.error, WrongRegion)
    assert event.error.endpoints == there[:16]
    assert b"endpoints" not in ServerProtocol.error(1, RateLimited("slow down"))


def test_an_error_frame_with_a_bad_endpoint_is_refused() -> None:
    client, _ = open_pair()
    request_id, _ = client.call("updates.get_state", methods.GetState())
    frame = msgspec.msgpack.encode({"t": "error", "id": request_id, "code": "WRONG_REGION",
                                    "message": "", "endpoints": ["ftp://x\n"]})
    with pytest.raises(ProtocolError):
        client.receive(frame)


@settings(max_examples=50, deadline=None)
@given(updates=st.lists(valid(up.AnyUpdate), max_size=5))
def test_updates_frames_decode_to_typed_updates(updates: list[Any]) -> None:
    event = ClientProtocol().receive(ServerProtocol.updates(updates))
    assert event == UpdatesReceived(updates)


def test_result_for_an_unknown_request() -> None:
    client = ClientProtocol()
    with pytest.raises(ProtocolError):
        client.receive(ServerProtocol.result(12, State(pts=1, date=0.0)))


def test_forgotten_request_gets_no_result() -> None:
    client = ClientProtocol()
    request_id, _ = client.call("updates.get_state", methods.GetState())
    client.forget(request_id)
    with pytest.raises(ProtocolError):
        client.receive(ServerProtocol.result(request_id, State(pts=1, date=0.0)))


def test_result_of_the_wrong_type() -> None:
    client = ClientProtocol()
    request_id, _ = client.call("messages.history", methods.History(chat_id=1))
    with pytest.raises(ProtocolError):
        client.receive(ServerProtocol.result(request_id, {"not": "a list"}))


def test_results_are_matched_by_id_not_order() -> None:
    client = ClientProtocol()
    state_id, _ = client.call("updates.get_state", methods.GetState())
    history_id, _ = client.call("messages.history", methods.History(chat_id=1))
    message = Message(chat_id=1, id=1, sender_id=2, date=math.pi, text="hi")
    assert client.receive(ServerProtocol.result(history_id, [message])) == ResultReceived(
        history_id, [message])
    assert client.receive(ServerProtocol.result(state_id, State(pts=3, date=0.0))) == (
        ResultReceived(state_id, State(pts=3, date=0.0)))


@settings(max_examples=200)
@given(data=st.binary(max_size=256) | msgpack_values.map(encode))
def test_client_receive_raises_only_protocol_errors(data: bytes) -> None:
    client = ClientProtocol()
    client.call("updates.get_state", methods.GetState())
    try:
        event = client.receive(data)
    except ProtocolError:
        return
    assert isinstance(event, (WelcomeReceived, ResultReceived, ErrorReceived, UpdatesReceived,
                              ItemsReceived, FrameSkipped))


@settings(max_examples=200)
@given(tag=st.sampled_from(["updates", "items", "result", "welcome", "error", "x_new"]),
       value=msgpack_values, key=st.sampled_from(["updates", "items", "value", "x"]))
def test_client_receive_of_hostile_frames_of_every_type(tag: str, value: Any, key: str) -> None:
    """Frames of each type with a hostile payload: a typed event (a later frame type is
    skipped, an unreadable update body is an UnknownUpdate) or a ProtocolError."""
    client = ClientProtocol()
    client.call("updates.get_state", methods.GetState())
    frame = {"t": tag, "id": 1, key: value, "version": 2, "server": "s", "code": "X"}
    try:
        event = client.receive(encode(frame))
    except ProtocolError:
        return
    assert isinstance(event, (WelcomeReceived, ResultReceived, ErrorReceived, UpdatesReceived,
                              ItemsReceived, FrameSkipped))
    if tag == "x_new":
        assert event == FrameSkipped("x_new")


@pytest.mark.parametrize("frame", [
    {"t": "result", "id": 1},            # as the result's value
    {"t": "error", "code": "INTERNAL"},  # in an unknown field
])
def test_client_survives_deep_nesting_from_the_server(frame: dict[str, Any]) -> None:
    client = ClientProtocol()
    client.call("updates.get_state", methods.GetState())
    head = encode(frame)
    nested = b"\x91" * 60_000 + b"\xc0"
    key = "value" if frame["t"] == "result" else "extra"
    with pytest.raises(ProtocolError):
        client.receive(bytes([head[0] + 1]) + head[1:] + encode(key) + nested)


@given(st.floats(min_value=0, max_value=limits.MAX_RETRY_SECONDS))
def test_the_welcome_carries_the_servers_reconnect_window(window: float) -> None:
    _, server = open_pair()
    frame = server.welcome("pigeon/1", None, 7, None, None, "pgr1." + "A" * 75, [], window)
    event = ClientProtocol().receive(frame)
    assert isinstance(event, WelcomeReceived) and event.welcome.reconnect_window == window
    # an older server sends none: no spread beyond the SDK's backoff
    assert ClientProtocol().receive(
        server.welcome("old", None, None, None)).welcome.reconnect_window is None


@pytest.mark.parametrize("window", [-1.0, limits.MAX_RETRY_SECONDS + 1, "soon"])
def test_a_reconnect_window_out_of_bounds_is_refused(window: Any) -> None:
    frame = encode({"t": "welcome", "version": 1, "server": "x", "reconnect_window": window})
    with pytest.raises(ProtocolError):
        ClientProtocol().receive(frame)
