"""Streams: what they are called, how their positions are numbered, who reads which.

Three kinds of stream (docs/protocol.md, "Streams"):

* ``user:<id>``: a person's own updates (their ``pts``), one position per update per person;
* ``chat:<id>``: one sequence for a very large chat (kind ``supergroup``) that every member
  reads: a message there is one item, not one update per member;
* ``device:<id>``: the inbox of one logged-in device (``id`` is its session id), which only
  that device reads and acknowledges (end-to-end envelopes, issue 9).

The numbering rule is here and every backend applies it under a lock on the stream's head
(SQLite: its single writer; PostgreSQL: ``SELECT ... FOR UPDATE`` on the head row), inside the
transaction that writes the items: positions are 1, 2, 3... per stream, never reused, with
no gap even under concurrent writers, because nobody else can read the head between the
read and the write.
"""

from __future__ import annotations

from typing import NamedTuple

from pigeon.protocol import updates as up
from pigeon.protocol.errors import InvalidArgument, NotFound

USER, CHAT, DEVICE = "user", "chat", "device"

#: the chat kind whose updates travel on its own stream instead of each member's
LARGE_CHAT_KIND = "supergroup"

#: an item of a device inbox is an opaque envelope of at most this many bytes (a Megolm or
#: Olm message with its headers is far below it)
MAX_DEVICE_ITEM_BYTES = 64 * 1024
#: how many device inboxes one append reaches at most (one per device of the recipients)
MAX_DEVICES_PER_APPEND = 1_000
#: how many items one append to a stream writes at most
MAX_ITEMS_PER_APPEND = 1_000


class StreamRef(NamedTuple):
    kind: str
    id: int


def name(kind: str, ident: int) -> str:
    return f"{kind}:{ident}"


def chat_stream(chat_id: int) -> str:
    return name(CHAT, chat_id)


def device_stream(session_id: int) -> str:
    return name(DEVICE, session_id)


def chat_of(update: up.AnyUpdate) -> int:
    """The chat an update of a chat's stream belongs to."""
    if isinstance(update, up.NewMessage | up.EditMessage):
        return update.message.chat_id
    if isinstance(update, up.ChatUpdate):
        return update.chat.id
    if isinstance(update, up.DeleteMessages | up.ReadInbox | up.ReadOutbox | up.Typing):
        return update.chat_id
    raise ValueError(f"{type(update).__name__} belongs to no chat")


def parse(stream: str) -> StreamRef:
    """``kind:number``; INVALID_ARGUMENT otherwise (the wire's pattern already checks it)."""
    kind, sep, ident = stream.partition(":")
    if not sep or not kind.isalpha() or not ident.isdigit():
        raise InvalidArgument(f"not a stream name: {stream!r}")
    return StreamRef(kind, int(ident))


def on_chat_stream(kind: str) -> bool:
    """Whether a chat of ``kind`` writes its updates once, on its own stream."""
    return kind == LARGE_CHAT_KIND


def allocate(head: int, count: int) -> range:
    """The positions of ``count`` items appended to a stream whose last position is
    ``head``: the next ``count`` integers. The new head is the range's last."""
    if count < 0 or head < 0:
        raise ValueError("a stream's head and an append's count are not negative")
    return range(head + 1, head + 1 + count)


def not_followed(stream: str) -> NotFound:
    """One answer for a stream that does not exist and one the caller may not read."""
    return NotFound(f"no stream {stream!r} that you follow", code="STREAM_NOT_FOUND")


def device_reader(stream: str, session_id: int) -> int:
    """The session whose inbox ``stream`` is, if the caller (``session_id``) is that
    device; STREAM_NOT_FOUND otherwise: another device's inbox is never readable."""
    ref = parse(stream)
    if ref.kind != DEVICE or ref.id != session_id:
        raise not_followed(stream)
    return ref.id


def check_devices(session_ids: list[int]) -> None:
    if len(session_ids) > MAX_DEVICES_PER_APPEND:
        raise InvalidArgument(f"at most {MAX_DEVICES_PER_APPEND} devices in one append")


def check_envelopes(bodies: list[bytes]) -> None:
    """Bounds of an append to device inboxes or a stream (INVALID_ARGUMENT)."""
    if len(bodies) > MAX_ITEMS_PER_APPEND:
        raise InvalidArgument(f"at most {MAX_ITEMS_PER_APPEND} items in one append")
    for body in bodies:
        if not body or len(body) > MAX_DEVICE_ITEM_BYTES:
            raise InvalidArgument(f"an item holds 1 to {MAX_DEVICE_ITEM_BYTES} bytes")


def first_readable(stream_from: int, asked: int) -> int:
    """Where a member's read of a chat stream starts: after what they asked for, but never
    before they joined (``stream_from``: the stream's head then). Someone who joined sees
    the chat's items from their joining on, as a newcomer's history starts at joining."""
    return max(stream_from, asked)


def chat_item_for(update: up.AnyUpdate, history_from: int) -> up.AnyUpdate:
    """A chat stream item as one member may see it. Items are written once for all; an edit
    or deletion of a message from before someone joined must not hand them its text, so
    they get, at the same position, a deletion that names nothing (the placeholder that
    moves a position without changing anything, as :mod:`pigeon.protocol.holdback` uses)."""
    if isinstance(update, up.EditMessage) and update.message.id <= history_from:
        return up.DeleteMessages(pts=update.pts, chat_id=update.message.chat_id,
                                 message_ids=[], for_everyone=True)
    if isinstance(update, up.DeleteMessages) and update.for_everyone:
        seen = [i for i in update.message_ids if i > history_from]
        if len(seen) != len(update.message_ids):
            return up.DeleteMessages(pts=update.pts, chat_id=update.chat_id, message_ids=seen,
                                     for_everyone=True)
    return update
