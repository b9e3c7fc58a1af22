"""Frames and the sans-I/O connection state machines for both ends.

One MessagePack frame per message; the transport (WebSocket now, a length-prefixed TCP stream
later) only moves whole frames. Nothing here touches a socket or an event loop: feed bytes to
``receive``, get an event back; the methods that produce frames return bytes.

The first client frame must be ``Hello``: it names the protocol versions the client speaks
and may carry a session token. The server answers ``Welcome`` with the version it chose, and
from then on sends that connection only what its version holds (:mod:`.versions`,
:mod:`.holdback`). The client is lenient in turn: a server frame of a type it does not know
is skipped, and update bodies are decoded one by one, so that one it cannot read is an
:class:`~.updates.UnknownUpdate` rather than a dead connection.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import Meta

from . import limits, sizes, versions
from .errors import (
    InvalidArgument, PigeonError, ProtocolError, ResultTooLarge, UnknownMethod, error_from_wire,
)
from .holdback import hold_back
from .methods import METHODS, Params
from .resumption import MAX_TICKET_CHARS
from .streams import Item, StreamItem, read_item
from .types import Budget, Name, State, Struct, Token, User
from .updates import Difference, Update, UnknownUpdate, read_update

RequestId = Annotated[int, Meta(ge=0, le=limits.MAX_REQUEST_ID)]


class Frame(Struct, tag_field="t"):
    pass


# -- client → server --------------------------------------------------------------------------
class Hello(Frame, tag="hello"):
    versions: Annotated[list[int], Meta(max_length=8)]
    client: Name = ""
    token: Token | None = None
    # The resumption ticket of the token's session, from its last welcome: the server checks
    # it without a database read (issue 13). Ignored, and the token checked, if it fails.
    ticket: Annotated[str, Meta(max_length=MAX_TICKET_CHARS)] | None = None


class Call(Frame, tag="call"):
    id: RequestId
    method: Annotated[str, Meta(max_length=64)]
    params: msgspec.Raw = msgspec.Raw(b"\x80")  # an empty map


# -- server → client --------------------------------------------------------------------------
#: a node's public address (http(s):// or ws(s)://), as ``pigeon --server`` takes it
Endpoint = Annotated[str, Meta(max_length=256, pattern=r"^(https?|wss?)://[^\s]+$")]
MAX_ENDPOINTS = 16


class Welcome(Frame, tag="welcome"):
    version: int
    server: str
    user: User | None = None
    session_id: int | None = None
    state: State | None = None
    budget: Budget | None = None  # absent: shield off, or an older server (defaults apply)
    # Where else this deployment serves (the region's nodes): the SDK keeps them and tries
    # the next one when the node it used stops answering (issue 12). Older readers ignore it.
    endpoints: Annotated[list[Endpoint], Meta(max_length=MAX_ENDPOINTS)] = []
    # A logged-in welcome: the resumption ticket to present at the next hello (issue 13).
    ticket: Annotated[str, Meta(max_length=MAX_TICKET_CHARS)] | None = None
    # Seconds over which this server's devices should spread their returns after losing it
    # without a word (a crash, a cut network): sized to how many it serves. A device whose
    # first attempt to come back fails waits its own pick in [0, reconnect_window] (issue 13).
    reconnect_window: Annotated[float, Meta(ge=0, le=limits.MAX_RETRY_SECONDS)] | None = None


class Result(Frame, tag="result"):
    id: int
    value: msgspec.Raw


class Error(Frame, tag="error"):
    code: str
    id: int | None = None  # None: about the connection, not one call
    message: str = ""
    retry_after: float | None = None
    # The going-away notice (code SHUTTING_DOWN, id None) and other refusals that would
    # otherwise bring every client back at once: come back after retry_after plus a delay
    # picked uniformly in [0, retry_spread]. Older readers ignore the field (issue 13).
    retry_spread: Annotated[float, Meta(ge=0, le=limits.MAX_RETRY_SECONDS)] | None = None
    # Where to go instead: WRONG_REGION's home region endpoints (issue 12). Older readers
    # ignore it; absent for every other error.
    endpoints: Annotated[list[Endpoint], Meta(max_length=MAX_ENDPOINTS)] | None = None


class Updates(Frame, tag="updates"):
    """Version 1's push: updates of the user's own stream, each carrying its ``pts``. Each is
    decoded on its own (``read_update``), so the type is the encoded body."""

    updates: list[msgspec.Raw]


class Items(Frame, tag="items"):
    """Version 2's push: stream items (:class:`~.streams.Item`), in order per stream."""

    items: list[Item]


ClientFrame = Hello | Call
ServerFrame = Welcome | Result | Error | Updates | Items

_encoder = msgspec.msgpack.Encoder()


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


# -- server side ------------------------------------------------------------------------------
class HelloReceived(msgspec.Struct, frozen=True):
    version: int
    client: str
    token: str | None
    ticket: str | None = None


class CallReceived(msgspec.Struct, frozen=True):
    id: int
    method: str
    params: Params


class CallRejected(msgspec.Struct, frozen=True):
    """The frame was a call, but its method or params were wrong: answer it, carry on."""

    id: int
    error: PigeonError
    reply: bytes


class Violation(msgspec.Struct, frozen=True):
    """The peer broke the protocol. Send ``reply``; close if ``close``."""

    error: PigeonError
    reply: bytes
    close: bool


ServerEvent = HelloReceived | CallReceived | CallRejected | Violation


class Phase(enum.Enum):
    AWAIT_HELLO = 1
    OPEN = 2
    CLOSED = 3


class ServerProtocol:
    """The server's view of one connection. Never raises out of :meth:`receive`."""

    #: violations tolerated before the connection is closed; a buggy client gets its typed
    #: errors, a hostile one does not get to make us parse garbage forever
    max_violations = 16

    def __init__(self, max_frame_bytes: int = limits.MAX_FRAME_BYTES) -> None:
        self.phase = Phase.AWAIT_HELLO
        self.version = 0
        self.max_frame_bytes = max_frame_bytes
        self.violations = 0

    # Decoders hold no per-connection state: one set serves every connection, so a flood of
    # connections costs no decoder memory.
    _frame_decoder = msgspec.msgpack.Decoder(ClientFrame)
    _param_decoders = {name: msgspec.msgpack.Decoder(m.params) for name, m in METHODS.items()}

    def receive(self, data: bytes) -> ServerEvent:
        if self.phase is Phase.CLOSED:
            return self._violation(ProtocolError("connection is closed"), close=True)
        if len(data) > self.max_frame_bytes:
            err = ProtocolError(
                f"frame of {len(data)} bytes exceeds the {self.max_frame_bytes}-byte limit",
                code="FRAME_TOO_LARGE",
            )
            return self._violation(err, close=True)
        try:
            frame = self._frame_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return self._violation(ProtocolError(f"undecodable frame: {exc}"))
        if isinstance(frame, Hello):
            return self._hello(frame)
        if self.phase is Phase.AWAIT_HELLO:
            return self._violation(
                ProtocolError("the first frame must be hello", code="HELLO_REQUIRED"), close=True
            )
        return self._call(frame)

    def _hello(self, hello: Hello) -> ServerEvent:
        if self.phase is not Phase.AWAIT_HELLO:
            return self._violation(ProtocolError("hello was already received"))
        common = set(hello.versions) & set(limits.SUPPORTED_VERSIONS)
        if not common:
            err = ProtocolError(
                f"no common protocol version: client speaks {sorted(hello.versions)}, "
                f"server speaks {list(limits.SUPPORTED_VERSIONS)}",
                code="UNSUPPORTED_VERSION",
            )
            return self._violation(err, close=True)
        self.version = max(common)
        self.phase = Phase.OPEN
        return HelloReceived(self.version, hello.client, hello.token, hello.ticket)

    def _call(self, call: Call) -> ServerEvent:
        decoder = self._param_decoders.get(call.method)
        if decoder is None or not versions.method_allowed(call.method, self.version):
            return self._reject(call.id, UnknownMethod(
                f"no method named {call.method!r} in protocol version {self.version}"))
        try:
            params = decoder.decode(call.params)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            return self._reject(call.id, InvalidArgument(f"{call.method}: {exc}"))
        return CallReceived(call.id, call.method, params)

    def _reject(self, request_id: int, error: PigeonError) -> CallRejected:
        return CallRejected(request_id, error, self.error(request_id, error))

    def _violation(self, error: PigeonError, close: bool = False) -> Violation:
        self.violations += 1
        close = close or self.violations >= self.max_violations
        if close:
            self.phase = Phase.CLOSED
        return Violation(error, self.error(None, error), close)

    # Frames the server sends.
    def welcome(
        self, server: str, user: User | None, session_id: int | None, state: State | None,
        budget: Budget | None = None, ticket: str | None = None,
        endpoints: list[str] | None = None, reconnect_window: float | None = None,
    ) -> bytes:
        return encode(Welcome(version=self.version, server=server, user=user,
                              session_id=session_id, state=state, budget=budget, ticket=ticket,
                              endpoints=endpoints or [], reconnect_window=reconnect_window))

    @staticmethod
    def result(request_id: int, value: Any) -> bytes:
        """The answer to a call; if it would outgrow ``MAX_SERVER_FRAME_BYTES`` (which paged
        results never do), ``RESULT_TOO_LARGE`` instead: a peer refuses larger frames, and an
        SDK that reconnects and asks again would never get past it (issue 7, finding 3)."""
        frame = encode(Result(id=request_id, value=msgspec.Raw(encode(value))))
        if len(frame) > limits.MAX_SERVER_FRAME_BYTES:
            return ServerProtocol.error(request_id, ResultTooLarge(
                f"the answer would take {len(frame)} bytes, over the "
                f"{limits.MAX_SERVER_FRAME_BYTES}-byte frame limit"))
        return frame

    @staticmethod
    def error(request_id: int | None, error: PigeonError) -> bytes:
        return encode(Error(id=request_id, code=error.code, message=error.message,
                            retry_after=error.retry_after, retry_spread=error.retry_spread,
                            endpoints=error.endpoints[:MAX_ENDPOINTS] or None))

    @staticmethod
    def updates(updates: list[Any]) -> bytes:
        """One version-1 frame of pushed updates, whatever its size (see
        :meth:`update_frames`)."""
        return encode(Updates(updates=[msgspec.Raw(_encoder.encode(u)) for u in updates]))

    def hold_back(self, value: Any) -> Any:
        """``value`` as this connection's version may receive it (:mod:`.holdback`)."""
        return hold_back(value, self.version)

    def update_frames(self, updates: list[Any], stream: str) -> list[bytes]:
        """Pushed updates of ``stream`` (each at position ``pts``), as few frames as fit
        ``MAX_SERVER_FRAME_BYTES`` each, in order: ``items`` frames for version 2 and later,
        ``updates`` frames (held back to version 1's shapes) before.

        Each is encoded once and spliced into its frame. One that alone would not fit (none
        can: the largest is a message of about 16.5 KiB) is left out; the device finds the
        hole and asks for the difference, which pages by bytes."""
        as_items = self.version >= versions.FRAME_SINCE["items"]
        frames: list[bytes] = []
        batch: list[msgspec.Raw] = []
        room = sizes.PAGE_BYTES

        def flush() -> None:
            frame = Items(items=batch) if as_items else Updates(updates=batch)  # type: ignore[arg-type]
            frames.append(encode(frame))

        held = self.version < versions.newest_shape()  # asked once per push, not per update
        for update in updates:
            if held:
                update = hold_back(update, self.version)
            wire: Any = Item(stream=stream, seq=update.pts, body=msgspec.Raw(
                _encoder.encode(update))) if as_items else update
            raw = _encoder.encode(wire)
            if len(raw) > room and batch:
                flush()
                batch, room = [], sizes.PAGE_BYTES
            if len(raw) > room:
                continue
            batch.append(msgspec.Raw(raw))
            room -= len(raw)
        if batch:
            flush()
        return frames


# -- client side ------------------------------------------------------------------------------
class WelcomeReceived(msgspec.Struct, frozen=True):
    welcome: Welcome


class ResultReceived(msgspec.Struct, frozen=True):
    id: int
    value: Any


class ErrorReceived(msgspec.Struct, frozen=True):
    id: int | None
    error: PigeonError


class UpdatesReceived(msgspec.Struct, frozen=True):
    """Version 1: updates of the user's own stream, each positioned by its ``pts``; one this
    reader could not read is an :class:`~.updates.UnknownUpdate`."""

    updates: list[Update | UnknownUpdate]


class ItemsReceived(msgspec.Struct, frozen=True):
    """Version 2: stream items, bodies decoded (or :class:`~.updates.UnknownUpdate`)."""

    items: list[StreamItem]


class FrameSkipped(msgspec.Struct, frozen=True):
    """A frame of a type this reader does not know (a later version's): nothing to do."""

    type: str


ClientEvent = (WelcomeReceived | ResultReceived | ErrorReceived | UpdatesReceived
               | ItemsReceived | FrameSkipped)

_SERVER_FRAMES = frozenset(versions.FRAME_SINCE)


class _FrameHead(msgspec.Struct):
    t: Any = None


class _DifferenceOnTheWire(Struct):
    updates: list[msgspec.Raw]
    state: State
    more: bool = False


def _read_difference(raw: bytes | msgspec.Raw) -> Difference:
    wire = _difference_decoder.decode(raw)
    return Difference(updates=[read_update(u) for u in wire.updates],  # type: ignore[misc]
                      state=wire.state, more=wire.more)


_difference_decoder = msgspec.msgpack.Decoder(_DifferenceOnTheWire)
_frame_head_decoder = msgspec.msgpack.Decoder(_FrameHead)


class ClientProtocol:
    """The SDK's view of one connection: numbers calls and decodes their typed results."""

    def __init__(self) -> None:
        self._next_id = 1
        self._pending: dict[int, str] = {}
        self.version = 0  # negotiated: known once the welcome came

    _decoder = msgspec.msgpack.Decoder(ServerFrame)
    _result_decoders: ClassVar[dict[str, Any]] = {
        name: msgspec.msgpack.Decoder(m.result).decode for name, m in METHODS.items()}
    # Results that hold update bodies: decoded one body at a time, as pushes are.
    _result_decoders["updates.get_difference"] = _read_difference

    @staticmethod
    def hello(token: str | None = None, client: str = "pigeon-sdk",
              versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS,
              ticket: str | None = None) -> bytes:
        return encode(Hello(versions=list(versions), client=client, token=token,
                            ticket=ticket if token is not None else None))

    def call(self, method: str, params: Params) -> tuple[int, bytes]:
        if method not in METHODS:
            raise UnknownMethod(f"no method named {method!r}")
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        frame = Call(id=request_id, method=method, params=msgspec.Raw(encode(params)))
        return request_id, encode(frame)

    def receive(self, data: bytes) -> ClientEvent:
        """Decode one server frame; raises ProtocolError if the server sent garbage. A frame
        of a type this reader does not know is :class:`FrameSkipped`, not garbage."""
        try:
            frame = self._decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            kind = self._frame_type(data)
            if kind is not None and kind not in _SERVER_FRAMES:
                return FrameSkipped(kind)
            raise ProtocolError(f"server sent an undecodable frame: {exc}") from exc
        if isinstance(frame, Items):
            return ItemsReceived([read_item(item) for item in frame.items])
        if isinstance(frame, Updates):
            return UpdatesReceived([read_update(raw) for raw in frame.updates])
        if isinstance(frame, Result):
            method = self._pending.pop(frame.id, None)
            if method is None:
                raise ProtocolError(f"result for unknown request {frame.id}")
            try:
                value = self._result_decoders[method](frame.value)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise ProtocolError(f"{method}: server sent a bad result: {exc}") from exc
            return ResultReceived(frame.id, value)
        if isinstance(frame, Error):
            if frame.id is not None:
                self._pending.pop(frame.id, None)
            return ErrorReceived(frame.id, error_from_wire(
                frame.code, frame.message, frame.retry_after, frame.retry_spread,
                frame.endpoints))
        self.version = frame.version
        return WelcomeReceived(frame)

    @staticmethod
    def _frame_type(data: bytes) -> str | None:
        """The tag of a frame that did not decode, if it has one."""
        try:
            head = _frame_head_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return None
        return head.t if isinstance(head.t, str) else None

    def forget(self, request_id: int) -> None:
        self._pending.pop(request_id, None)
