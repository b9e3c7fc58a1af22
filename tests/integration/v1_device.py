"""A device whose client was built for protocol version 1, as released (commit 968d8af).

It offers only version 1 and reads with version 1's schema, frozen here: closed unions and
closed enums, exactly as that SDK had them. Whatever it cannot decode is, as it was for that
SDK, the end of its connection (``refused`` says what it was). Its sync follows that SDK's
rule: apply ``pts`` = local + 1, drop older, wait briefly on a hole, then fetch
``updates.get_difference`` until ``more`` is false.

This must never import the current schema: it stands for the clients already out there.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Literal

import aiohttp
import msgspec

# -- protocol version 1's schema, frozen --------------------------------------------------------
Role = Literal["owner", "admin", "member"]
ChatKind = Literal["private", "group"]
WhoCanAdd = Literal["everyone", "contacts", "nobody"]


class Struct(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    pass


class User(Struct):
    id: int
    name: str
    username: str | None = None
    phone: str | None = None


class State(Struct):
    pts: int
    date: float


class FwdFrom(Struct):
    sender_id: int
    chat_id: int
    message_id: int
    date: float


class Message(Struct):
    chat_id: int
    id: int
    sender_id: int
    date: float
    text: str = ""
    reply_to: int | None = None
    fwd_from: FwdFrom | None = None
    edit_date: float | None = None
    deleted: bool = False


class Chat(Struct):
    id: int
    kind: ChatKind
    title: str = ""
    member_count: int = 0
    peer_id: int | None = None
    role: Role | None = None
    last_message_id: int = 0
    invited_by: int | None = None
    invited: list[int] = []


class Affected(Struct):
    pts: int = 0
    count: int = 0


class Update(Struct, tag_field="u"):
    pts: int


class NewMessage(Update, tag="new_message"):
    message: Message


class EditMessage(Update, tag="edit_message"):
    message: Message


class DeleteMessages(Update, tag="delete_messages"):
    chat_id: int
    message_ids: list[int]
    for_everyone: bool = False


class ReadInbox(Update, tag="read_inbox"):
    chat_id: int
    max_id: int
    unread_count: int = 0


class ReadOutbox(Update, tag="read_outbox"):
    chat_id: int
    max_id: int


class ChatUpdate(Update, tag="chat"):
    chat: Chat


class Typing(Update, tag="typing"):
    chat_id: int
    user_id: int


AnyUpdate = NewMessage | EditMessage | DeleteMessages | ReadInbox | ReadOutbox | ChatUpdate | Typing


class Difference(Struct):
    updates: list[AnyUpdate]
    state: State
    more: bool = False


class Frame(Struct, tag_field="t"):
    pass


class Welcome(Frame, tag="welcome"):
    version: int
    server: str
    user: User | None = None
    session_id: int | None = None
    state: State | None = None


class Result(Frame, tag="result"):
    id: int
    value: msgspec.Raw


class Error(Frame, tag="error"):
    code: str
    id: int | None = None
    message: str = ""
    retry_after: float | None = None


class Updates(Frame, tag="updates"):
    updates: list[AnyUpdate]


ServerFrame = Welcome | Result | Error | Updates
_frames = msgspec.msgpack.Decoder(ServerFrame)


class CallFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# -- the device -----------------------------------------------------------------------------
class V1Device:
    GAP_WAIT = 0.5  # as that SDK

    def __init__(self, url: str, token: str, pts: int = 0) -> None:
        self.url = url.replace("http://", "ws://") + "/v1/ws"
        self.token = token
        self.pts = pts                        # the last pts applied
        self.applied: list[Any] = []          # every update applied, in order
        self.refused: list[str] = []          # what it could not decode (fatal, then)
        self.welcome: Welcome | None = None
        self._early: dict[int, Any] = {}
        self._calls: dict[int, asyncio.Future[msgspec.Raw]] = {}
        self._ids = itertools.count(1)
        self._gap: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()

    async def connect(self) -> V1Device:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url, max_msg_size=256 * 1024)
        await self.ws.send_bytes(msgspec.msgpack.encode(
            {"t": "hello", "versions": [1], "client": "pigeon-sdk/v1", "token": self.token}))
        first = _frames.decode((await self.ws.receive(timeout=10)).data)
        assert isinstance(first, Welcome), first
        assert first.version == 1
        self.welcome = first
        self.reader = asyncio.create_task(self._read())
        return self

    @property
    def connected(self) -> bool:
        return not self.ws.closed and not self.reader.done()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            try:
                frame = _frames.decode(msg.data)
            except msgspec.DecodeError as exc:
                # That SDK's ProtocolError: MALFORMED_FRAME, and the connection is dropped.
                self.refused.append(f"{exc}: {msg.data[:300]!r}")
                await self.ws.close()
                break
            if isinstance(frame, Updates):
                self.accept(frame.updates)
            elif isinstance(frame, Result) and frame.id in self._calls:
                self._calls.pop(frame.id).set_result(frame.value)
            elif isinstance(frame, Error) and frame.id in self._calls:
                self._calls.pop(frame.id).set_exception(CallFailed(frame.code, frame.message))
        for fut in self._calls.values():
            fut.cancel()

    async def call(self, method: str, params: dict[str, Any], result: Any) -> Any:
        request_id = next(self._ids)
        fut = self._calls[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_bytes(msgspec.msgpack.encode(
            {"t": "call", "id": request_id, "method": method, "params": params}))
        raw = await asyncio.wait_for(fut, 10)
        try:
            return msgspec.msgpack.decode(raw, type=result)
        except msgspec.DecodeError as exc:
            self.refused.append(f"{method}: {exc}")
            await self.ws.close()
            raise

    def accept(self, updates: list[Any]) -> None:
        for update in updates:
            if update.pts > self.pts:
                self._early[update.pts] = update
        while (update := self._early.pop(self.pts + 1, None)) is not None:
            self.pts = update.pts
            self.applied.append(update)
        for stale in [p for p in self._early if p <= self.pts]:
            del self._early[stale]
        if self._early and (self._gap is None or self._gap.done()):
            self._gap = asyncio.create_task(self._fill_gap_later())

    async def _fill_gap_later(self) -> None:
        await asyncio.sleep(self.GAP_WAIT)
        if self._early:
            await self.sync()

    async def sync(self) -> None:
        async with self._sync_lock:
            while True:
                diff = await self.call("updates.get_difference", {"pts": self.pts}, Difference)
                self.accept(diff.updates)
                if diff.state.pts > self.pts and not diff.updates:
                    self.pts = diff.state.pts
                if not diff.more:
                    return

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        await self.http.close()
