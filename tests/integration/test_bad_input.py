"""Bad input on the wire: every case gets a typed error frame, and nobody else notices.

One real server for the whole module (``pigeon serve`` as a subprocess). Each test talks to
it over raw WebSockets, building frames by hand with msgspec; after each test an SDK client
(Alice) still sends a message that another SDK client (Bob) receives through
``updates()``, and the server has logged no traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import pytest

from pigeon.protocol import versions
import pytest_asyncio

from pigeon.client import Client
from pigeon.protocol import limits
from pigeon.protocol.errors import CODES
from pigeon.protocol.updates import NewMessage
from pigeon.testing import ServerProcess, login

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# Close codes the server uses (RFC 6455 §7.4.1).
CLOSE_PROTOCOL, CLOSE_POLICY, CLOSE_TOO_BIG = 1002, 1008, 1009
APP_HELLO_DEADLINE = 10.0  # pigeon.server.app.HELLO_DEADLINE, when the shield is off
HELLO_DEADLINE = 2.0       # the shield's, set below to keep the test short

# Every connection here comes from 127.0.0.1, the bad ones and the good ones alike: the
# shield's per-address limits and bans are lifted (it stays on), or the first dozen bad
# frames would ban the address that Alice and Bob use too. This module is about malformed
# input getting typed errors, not about throttling.
_NO_LIMIT = "100000/1s burst 100000"
RELAXED = {
    **{f"PIGEON_{name}": _NO_LIMIT for name in (
        "CODE_RATE_ADDRESS", "CODE_RATE_PHONE", "CODE_RATE_COUNTRY", "CODE_RATE_GLOBAL",
        "RATE_ADDRESS", "RATE_PREFIX", "RATE_SESSION", "RATE_ACCOUNT", "RATE_SEND",
        "FRAME_RATE")},
    "PIGEON_BAN_STRIKES": "1000000",
    "PIGEON_HELLO_DEADLINE": str(HELLO_DEADLINE),
}

_phones = (f"+120255501{n:02d}" for n in itertools.count(10))
_ids = itertools.count(1000)


def enc(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


HELLO = enc({"t": "hello", "versions": [1]})


def call_frame(method: str, params: Any = None, request_id: int | None = None,
               raw_params: bytes | None = None) -> tuple[int, bytes]:
    """A call frame; ``raw_params`` is spliced in as already-encoded bytes."""
    rid = next(_ids) if request_id is None else request_id
    if raw_params is None:
        return rid, enc({"t": "call", "id": rid, "method": method,
                         "params": {} if params is None else params})
    head = b"\x84" + enc("t") + enc("call") + enc("id") + enc(rid) + enc("method") + enc(method)
    return rid, head + enc("params") + raw_params


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code, self.reason = code, reason


class Raw:
    """One hand-driven WebSocket to the server."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: bytes | str) -> None:
        if isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_bytes(frame)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame that is not an update push; raises Closed if the server closed."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED):
                raise Closed(self.ws.close_code, msg.extra or "")
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            frame = msgspec.msgpack.decode(msg.data)
            assert isinstance(frame, dict), frame
            if frame.get("t") != "updates":
                return frame

    async def error(self, request_id: int | None = None) -> dict[str, Any]:
        """The next frame, which must be an error (about ``request_id``)."""
        frame = await self.recv()
        assert frame["t"] == "error", frame
        assert frame.get("id") == request_id, frame
        assert frame["code"] in CODES and frame["code"] != "INTERNAL", frame
        return frame

    async def closed(self, timeout: float = 5.0) -> Closed:
        """Read until the server closes; no further frames may come."""
        try:
            frame = await self.recv(timeout)
        except Closed as exc:
            return exc
        raise AssertionError(f"expected a close, got {frame}")

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        rid, frame = call_frame(method, params)
        await self.send(frame)
        answer = await self.recv()
        assert answer.get("id") == rid, answer
        return answer

    async def ok(self, method: str, params: Any = None) -> Any:
        answer = await self.call(method, params)
        assert answer["t"] == "result", answer
        return answer["value"]

    async def fails(self, code: str, method: str, params: Any = None) -> dict[str, Any]:
        answer = await self.call(method, params)
        assert answer["t"] == "error" and answer["code"] == code, answer
        return answer

    async def usable(self) -> None:
        """The connection still serves a valid call (hello was said on it)."""
        answer = await self.call("updates.get_state")
        assert answer["t"] in ("result", "error"), answer
        if answer["t"] == "error":  # not logged in: still a typed, per-call answer
            assert answer["code"] == "AUTH_REQUIRED", answer


@dataclass
class World:
    server: ServerProcess
    http: aiohttp.ClientSession
    alice: Client
    bob: Client
    alice_token: str
    carol_token: str
    chat_id: int  # Alice and Bob's private chat; Carol is not in it
    silent: asyncio.Task[tuple[float, int | None, str]]
    raws: list[Raw] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/v1/ws"

    async def connect(self, hello: bool = True, token: str | None = None,
                      version: int = 1) -> Raw:
        ws = await self.http.ws_connect(self.ws_url, max_msg_size=0, autoclose=True)
        raw = Raw(ws)
        self.raws.append(raw)
        if hello:
            frame: dict[str, Any] = {"t": "hello", "versions": [version]}
            if token is not None:
                frame["token"] = token
            await raw.send(enc(frame))
            welcome = await raw.recv()
            assert welcome["t"] == "welcome", welcome
        return raw

    def send_params(self, text: str = "hi", **over: Any) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "random_id": next(_ids), "text": text, **over}


@pytest.fixture(scope="module")
def bad_input_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("bad-input"), env=RELAXED) as srv:
        yield srv


async def _silent_connection(http: aiohttp.ClientSession, url: str
                             ) -> tuple[float, int | None, str]:
    """Connect, say nothing, and report how long until the server closed, and how."""
    started = time.monotonic()
    async with http.ws_connect(url, max_msg_size=0) as ws:
        msg = await ws.receive(timeout=APP_HELLO_DEADLINE + 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR), msg
        extra = msg.extra if isinstance(msg.extra, str) else ""
        return time.monotonic() - started, ws.close_code, extra


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(bad_input_server: ServerProcess) -> AsyncIterator[World]:
    http = aiohttp.ClientSession()
    # Opened first so its 10 s hello deadline runs out while the other tests run.
    silent = asyncio.create_task(
        _silent_connection(http, f"ws://127.0.0.1:{bad_input_server.port}/v1/ws"))
    alice = await login(bad_input_server, next(_phones), "Alice")
    bob = await login(bad_input_server, next(_phones), "Bob")
    carol = await login(bad_input_server, next(_phones), "Carol")
    chat = await alice.chats.open_private(bob.profile.user_id)
    carol_token = carol.profile.token
    await carol.close()
    assert alice.profile.token and carol_token
    w = World(bad_input_server, http, alice, bob, alice.profile.token, carol_token, chat.id, silent)
    try:
        yield w
    finally:
        silent.cancel()
        await alice.close()
        await bob.close()
        await http.close()


async def assert_still_serving(w: World) -> None:
    """Alice (SDK, her own connection) sends; Bob (SDK) receives it via updates()."""
    text = f"still here {next(_ids)}"
    sent = await asyncio.wait_for(w.alice.messages.send(w.chat_id, text), 5)
    assert sent.message.text == text

    async def receive() -> None:
        async for update in w.bob.updates():
            if isinstance(update, NewMessage) and update.message.text == text:
                return

    await asyncio.wait_for(receive(), 5)


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def still_serving(world: World) -> AsyncIterator[None]:
    logged = len(world.server.log)
    yield
    for raw in world.raws:
        await raw.ws.close()
    world.raws.clear()
    assert world.server.proc is not None and world.server.proc.poll() is None, "server died"
    await assert_still_serving(world)
    new = "".join(world.server.log[logged:])
    assert "Traceback" not in new and "ERROR" not in new, new


# -- frames that are not frames ---------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"\xc1",                       # the one byte MessagePack never uses
    b"\x92\x01",                   # an array that stops short
    b"\x85\xa1t",                  # a map that stops short
    b"\xdb\xff\xff\xff\xff",       # a str32 claiming 4 GiB
    b"",                           # nothing at all
    HELLO + b"\x00",               # a valid frame with trailing bytes
], ids=["never-used", "short-array", "short-map", "huge-str-header", "empty", "trailing"])
async def test_malformed_msgpack_gets_malformed_frame(world: World, data: bytes) -> None:
    raw = await world.connect(token=world.alice_token)
    await raw.send(data)
    error = await raw.error()
    assert error["code"] == "MALFORMED_FRAME"
    await raw.usable()
    assert (await raw.ok("messages.send", world.send_params("after garbage")))["pts"] > 0


@pytest.mark.parametrize("text", ["hello", '{"t": "hello", "versions": [1]}', "",
                                  "\u00e9\U0001f600"])
async def test_text_websocket_frame_gets_typed_error(world: World, text: str) -> None:
    raw = await world.connect()
    await raw.send(text)
    assert (await raw.error())["code"] == "MALFORMED_FRAME"
    await raw.usable()


async def test_text_frame_before_hello_is_not_fatal(world: World) -> None:
    raw = await world.connect(hello=False)
    await raw.send("hello")
    assert (await raw.error())["code"] == "MALFORMED_FRAME"
    await raw.send(HELLO)
    assert (await raw.recv())["t"] == "welcome"
    await raw.usable()


@pytest.mark.parametrize("obj", [
    42, -1, None, True, 1.5, "call", b"\x01\x02", [1, 2, 3],
    {}, {"x": 1}, {"t": "nope"}, {"t": 5}, {"t": None},
    {"t": "call"},                                       # no id, no method
    {"t": "call", "id": -1, "method": "updates.get_state"},
    {"t": "call", "id": 2**53 + 1, "method": "updates.get_state"},
    {"t": "call", "id": "1", "method": "updates.get_state"},
    {"t": "call", "id": 1, "method": "x" * 65},
    {"t": "welcome", "version": 1, "server": "me"},      # a server frame, sent by a client
    {"t": "result", "id": 1, "value": 1},
], ids=repr)
async def test_valid_msgpack_that_is_not_a_frame(world: World, obj: Any) -> None:
    raw = await world.connect(token=world.alice_token)
    await raw.send(enc(obj))
    error = await raw.error()  # about the connection: no request id
    assert error["code"] == "MALFORMED_FRAME"
    await raw.usable()


async def test_second_hello_is_rejected_but_not_fatal(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    await raw.send(HELLO)
    assert (await raw.error())["code"] == "MALFORMED_FRAME"
    await raw.usable()


async def test_too_many_violations_close_the_connection(world: World) -> None:
    raw = await world.connect()
    for _ in range(16):
        await raw.send(b"\xc1")
        assert (await raw.error())["code"] == "MALFORMED_FRAME"
    closed = await raw.closed()
    assert closed.code == CLOSE_PROTOCOL


# -- the hello handshake ----------------------------------------------------------------------
async def test_call_before_hello_is_refused_and_closed(world: World) -> None:
    raw = await world.connect(hello=False)
    _, frame = call_frame("updates.get_state")
    await raw.send(frame)
    error = await raw.error()
    assert error["code"] == "HELLO_REQUIRED"
    closed = await raw.closed()
    assert closed.code == CLOSE_PROTOCOL and closed.reason == "HELLO_REQUIRED"


@pytest.mark.parametrize("versions", [[3], [0], [], [99, 2**63 - 1], [-1]])
async def test_unsupported_protocol_version(world: World, versions: list[int]) -> None:
    raw = await world.connect(hello=False)
    await raw.send(enc({"t": "hello", "versions": versions}))
    error = await raw.error()
    assert error["code"] == "UNSUPPORTED_VERSION"
    closed = await raw.closed()
    assert closed.code == CLOSE_PROTOCOL


async def test_hello_with_a_bad_token_is_session_invalid(world: World) -> None:
    raw = await world.connect(hello=False)
    await raw.send(enc({"t": "hello", "versions": [1], "token": "pgn_not-a-real-token"}))
    assert (await raw.error())["code"] == "SESSION_INVALID"
    assert (await raw.closed()).code == CLOSE_POLICY


# -- calls with bad methods or params ---------------------------------------------------------
@pytest.mark.parametrize("method", ["messages.explode", "", "MESSAGES.SEND", "messages.send "])
async def test_unknown_method_answers_with_the_request_id(world: World, method: str) -> None:
    raw = await world.connect(token=world.alice_token)
    rid, frame = call_frame(method, {"chat_id": 1})
    await raw.send(frame)
    error = await raw.error(rid)
    assert error["code"] == "UNKNOWN_METHOD"
    await raw.usable()


@pytest.mark.parametrize(("field", "params"), [
    ("chat_id", {"chat_id": "seven", "random_id": 1, "text": "x"}),
    ("chat_id", {"chat_id": 0, "random_id": 1, "text": "x"}),
    ("chat_id", {"chat_id": 2**62 + 1, "random_id": 1, "text": "x"}),
    ("chat_id", {"chat_id": 1.5, "random_id": 1, "text": "x"}),
    ("random_id", {"chat_id": 1, "random_id": 2**64 - 1, "text": "x"}),
    ("random_id", {"chat_id": 1, "random_id": [1], "text": "x"}),
    ("random_id", {"chat_id": 1, "text": "x"}),
    ("text", {"chat_id": 1, "random_id": 1, "text": 12}),
    ("text", {"chat_id": 1, "random_id": 1, "text": None}),
    ("text", {"chat_id": 1, "random_id": 1, "text": b"bytes"}),
    ("reply_to", {"chat_id": 1, "random_id": 1, "text": "x", "reply_to": "1"}),
])
async def test_wrong_param_types_name_the_field(world: World, field: str,
                                                params: dict[str, Any]) -> None:
    raw = await world.connect(token=world.alice_token)
    rid, frame = call_frame("messages.send", params)
    await raw.send(frame)
    error = await raw.error(rid)
    assert error["code"] == "INVALID_ARGUMENT"
    assert field in error["message"], error
    await raw.usable()


@pytest.mark.parametrize("params", [5, "x", [1, 2], None, True])
async def test_params_that_are_not_a_map(world: World, params: Any) -> None:
    raw = await world.connect(token=world.alice_token)
    rid, frame = call_frame("messages.send", raw_params=enc(params))
    await raw.send(frame)
    assert (await raw.error(rid))["code"] == "INVALID_ARGUMENT"
    await raw.usable()


async def test_deeply_nested_params_get_a_typed_error(world: World) -> None:
    """Nesting deeper than the decoder's recursion limit: a typed error, not a dropped
    connection (this once escaped as RecursionError and closed the socket with 1000)."""
    raw = await world.connect(token=world.alice_token)
    rid, frame = call_frame("messages.send", raw_params=b"\x91" * 5000 + b"\x01")
    await raw.send(frame)
    error = await raw.recv()
    # params are skipped over while the frame is decoded: the frame is what is too deep
    assert error["t"] == "error" and error["code"] == "MALFORMED_FRAME", error
    # nesting the decoder gets through, in the wrong place: a per-call error
    params = (b"\x83" + enc("chat_id") + enc(world.chat_id) + enc("random_id") + enc(1)
              + enc("text") + b"\x91" * 200 + b"\x01")
    rid, frame = call_frame("messages.send", raw_params=params)
    await raw.send(frame)
    assert (await raw.error(rid))["code"] == "INVALID_ARGUMENT"
    await raw.send(b"\x81\xa1t" + b"\x91" * 5000 + b"\x01")  # in the frame itself
    assert (await raw.error())["code"] == "MALFORMED_FRAME"
    await raw.usable()


async def test_oversized_frame_gets_frame_too_large_then_close_1009(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    big = "x" * (limits.MAX_FRAME_BYTES + 100)
    _, frame = call_frame("messages.send", world.send_params(big))
    await raw.send(frame)
    error = await raw.error()
    assert error["code"] == "FRAME_TOO_LARGE"
    closed = await raw.closed()
    assert closed.code == CLOSE_TOO_BIG


async def test_frame_beyond_four_times_the_limit_is_cut_with_1009(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    await raw.send(b"\x00" * (4 * limits.MAX_FRAME_BYTES + 1))
    closed = await raw.closed()
    assert closed.code == CLOSE_TOO_BIG


async def test_frame_just_under_the_limit_is_accepted(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    # An unknown param is skipped: pad with one to make the frame exactly as big as allowed.
    params, rid = world.send_params("exactly at the limit"), next(_ids)
    size = 1000
    for _ in range(2):
        _, frame = call_frame("messages.send", {**params, "pad": "p" * size}, rid)
        size += limits.MAX_FRAME_BYTES - len(frame)
    assert len(frame) == limits.MAX_FRAME_BYTES
    await raw.send(frame)
    answer = await raw.recv()
    assert answer["t"] == "result" and answer["id"] == rid, answer


async def test_invalid_utf8_in_a_string_param(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    # junk, an encoded surrogate, a cut sequence, an overlong encoding
    for bad in (b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"ok\xc0\xaf"):
        params = (b"\x83" + enc("chat_id") + enc(world.chat_id) + enc("random_id") + enc(1)
                  + enc("text") + bytes([0xa0 | len(bad)]) + bad)
        rid, frame = call_frame("messages.send", raw_params=params)
        await raw.send(frame)
        error = await raw.error(rid)
        assert error["code"] == "INVALID_ARGUMENT", error
    # and in the method name, which is part of the frame itself
    await raw.send(b"\x83" + enc("t") + enc("call") + enc("id") + enc(1)
                   + enc("method") + b"\xa2\xff\xfe")
    assert (await raw.error())["code"] == "MALFORMED_FRAME"
    await raw.usable()


# -- auth -------------------------------------------------------------------------------------
@pytest.mark.parametrize("phone", ["12345", "+1", "+1 202 555", "not a phone", "",
                                   "+999999999999", "+49 000 0000000", "+1202555010"])
async def test_invalid_phone_number(world: World, phone: str) -> None:
    raw = await world.connect()
    await raw.fails("PHONE_INVALID", "auth.send_code", {"phone": phone})
    await raw.usable()


async def test_overlong_phone_is_invalid_argument(world: World) -> None:
    raw = await world.connect()
    error = await raw.fails("INVALID_ARGUMENT", "auth.send_code", {"phone": "+1" * 40})
    assert "phone" in error["message"]


@pytest.mark.parametrize(("method", "params"), [
    ("messages.send", {"chat_id": 1, "random_id": 1, "text": "hi"}),
    ("account.get_me", {}),
    ("chats.list", {}),
    ("updates.get_difference", {"pts": 0}),
    ("auth.log_out", {}),
    # issue 11
    ("users.block", {"user_id": 1}),
    ("users.unblock", {"user_id": 1}),
    ("users.blocked", {}),
    ("messages.report", {"chat_id": 1, "message_id": 1}),
    ("contacts.add", {"user_id": 1}),
    ("contacts.remove", {"user_id": 1}),
    ("contacts.list", {}),
    ("requests.list", {}),
    ("requests.accept", {"chat_id": 1}),
    ("requests.decline", {"chat_id": 1}),
    # issue 10
    ("stickers.create_set", {"name": "cats", "title": "Cats"}),
    ("stickers.remove", {"name": "cats", "index": 1}),
    ("stickers.move", {"name": "cats", "index": 1, "to": 2}),
    ("stickers.publish", {"name": "cats"}),
    ("stickers.search", {"query": "cats"}),
    ("stickers.get_set", {"name": "cats"}),
    ("stickers.install", {"name": "cats"}),
    ("stickers.uninstall", {"name": "cats"}),
    ("stickers.installed", {}),
    ("stickers.by_emoji", {"emoji": "😺"}),
    ("messages.send_sticker", {"chat_id": 1, "random_id": 1, "name": "cats", "index": 1}),
])
async def test_login_required(world: World, method: str, params: dict[str, Any]) -> None:
    # version 2's methods (METHOD_SINCE) are asked on a version-2 connection
    raw = await world.connect(version=versions.METHOD_SINCE.get(method, 1))
    await raw.fails("AUTH_REQUIRED", method, params)
    await raw.ok("auth.send_code", {"phone": next(_phones)})  # still talking to us


async def test_wrong_code_then_five_exhaust_it(world: World) -> None:
    raw = await world.connect()
    phone = next(_phones)
    sent = await raw.ok("auth.send_code", {"phone": phone})
    code = await asyncio.to_thread(world.server.code_for, phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    attempt = {"phone": phone, "code_id": sent["code_id"], "code": wrong, "name": "Mallory"}
    for _ in range(5):
        await raw.fails("CODE_INVALID", "auth.sign_in", attempt)
    # used up: even the right code no longer works
    await raw.fails("CODE_EXPIRED", "auth.sign_in", {**attempt, "code": code})
    # a code id that never existed, and a right code for another number
    await raw.fails("CODE_EXPIRED", "auth.sign_in", {**attempt, "code_id": "nope"})
    sent = await raw.ok("auth.send_code", {"phone": phone})
    code = await asyncio.to_thread(world.server.code_for, phone)
    await raw.fails("CODE_EXPIRED", "auth.sign_in",
                    {**attempt, "phone": next(_phones), "code_id": sent["code_id"], "code": code})
    await raw.usable()


async def test_one_wrong_code_leaves_the_right_one_working(world: World) -> None:
    raw = await world.connect()
    phone = next(_phones)
    sent = await raw.ok("auth.send_code", {"phone": phone})
    code = await asyncio.to_thread(world.server.code_for, phone)
    attempt = {"phone": phone, "code_id": sent["code_id"], "name": "Dave"}
    error = await raw.fails("CODE_INVALID", "auth.sign_in",
                            {**attempt, "code": f"{(int(code) + 1) % 10**6:06d}"})
    assert "4" in error["message"]  # attempts left
    auth = await raw.ok("auth.sign_in", {**attempt, "code": code})
    assert auth["user"]["name"] == "Dave"


# -- domain errors ----------------------------------------------------------------------------
async def test_message_to_a_chat_one_is_not_in(world: World) -> None:
    raw = await world.connect(token=world.carol_token)
    await raw.fails("NOT_A_MEMBER", "messages.send", world.send_params("let me in"))
    await raw.fails("NOT_A_MEMBER", "messages.history", {"chat_id": world.chat_id})
    await raw.usable()


@pytest.mark.parametrize("chat_id", [2**62, 987654321])
async def test_message_to_a_chat_that_does_not_exist(world: World, chat_id: int) -> None:
    # The same answer as for a chat one is not in: chat ids cannot be probed (finding 18).
    raw = await world.connect(token=world.alice_token)
    await raw.fails("NOT_A_MEMBER", "messages.send", world.send_params(chat_id=chat_id))
    await raw.usable()


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "   ", "", "\n\t"])
async def test_text_invalid(world: World, text: str) -> None:
    raw = await world.connect(token=world.alice_token)
    await raw.fails("TEXT_INVALID", "messages.send", world.send_params(text))
    await raw.usable()


async def test_text_length_is_counted_in_code_points(world: World) -> None:
    raw = await world.connect(token=world.alice_token)
    error = await raw.fails("INVALID_ARGUMENT", "messages.send",
                            world.send_params("x" * (limits.MAX_TEXT_CHARS + 1)))
    assert "text" in error["message"]
    await raw.fails("INVALID_ARGUMENT", "messages.send",
                    world.send_params("\U0001f600" * (limits.MAX_TEXT_CHARS + 1)))
    # exactly at the limit, in 4-byte code points: accepted
    sent = await raw.ok("messages.send", world.send_params("\U0001f600" * limits.MAX_TEXT_CHARS))
    assert len(sent["message"]["text"]) == limits.MAX_TEXT_CHARS


@pytest.mark.parametrize("username", ["1abc5", "abc", "a b c d", "_under", "abcd-e",
                                      "@@alice", "x" * 33, "p\u00e4ivi", "name\x00x"])
async def test_invalid_username(world: World, username: str) -> None:
    raw = await world.connect(token=world.carol_token)
    await raw.fails("USERNAME_INVALID", "account.set_username", {"username": username})
    await raw.usable()


async def test_overlong_username_is_invalid_argument(world: World) -> None:
    raw = await world.connect(token=world.carol_token)
    await raw.fails("INVALID_ARGUMENT", "account.set_username", {"username": "x" * 100})


async def test_username_taken_differing_only_in_case(world: World) -> None:
    alice = await world.connect(token=world.alice_token)
    carol = await world.connect(token=world.carol_token)
    user = await alice.ok("account.set_username", {"username": "WonderAlice"})
    assert user["username"] == "WonderAlice"
    for variant in ("wonderalice", "WONDERALICE", "@wonderAlice"):
        await carol.fails("USERNAME_TAKEN", "account.set_username", {"username": variant})
    # setting one's own username again, in another case, is not a conflict with oneself
    await alice.ok("account.set_username", {"username": "wonderalice"})
    await carol.usable()


# -- runs last: the silent connection opened when the module started --------------------------
async def test_connection_that_never_says_hello_is_closed(world: World) -> None:
    """Opened at module start, so the deadline overlaps the other tests.

    The shield aborts the socket at its ``hello_deadline`` (slowloris defence: no close
    frame); without the shield the server closes with 1008 HELLO_TIMEOUT after 10 s."""
    elapsed, code, reason = await asyncio.wait_for(world.silent, APP_HELLO_DEADLINE + 12)
    if code == CLOSE_POLICY:
        assert reason == "HELLO_TIMEOUT"
        assert APP_HELLO_DEADLINE - 1 <= elapsed <= APP_HELLO_DEADLINE + 5
    else:
        assert code in (None, 1006), (code, reason)  # aborted: no close handshake
        assert HELLO_DEADLINE - 0.5 <= elapsed <= HELLO_DEADLINE + 5, elapsed
