"""Streams (protocol version 2): every sequenced update is an item of a named stream.

An item is ``{stream, seq, body}``: ``stream`` names the sequence (``user:<id>``: a person's
own updates, their ``pts``; ``chat:<id>``: a large group's; ``device:<id>``: one device's
inbox; :mod:`pigeon.domain.streams`), ``seq`` is the
item's gap-free position in it (1, 2, 3...; 0 for an ephemeral item, such as typing, that
takes no position) and ``body`` is the update. A reader keeps one position per stream it
follows; it reads the envelope even when it cannot read the body, so an update of a type it
does not know still moves its position on (docs/protocol.md, "Streams").
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .types import Struct
from .updates import UnknownUpdate, Update, read_update

# A stream's name: its kind and the id of what it belongs to. The kinds are open (the server
# answers STREAM_NOT_FOUND for one it does not serve), the form is not.
StreamName = Annotated[str, Meta(max_length=40, pattern=r"^[a-z]{1,16}:[0-9]{1,20}$")]
Seq = Annotated[int, Meta(ge=0, le=2**62)]


def user_stream(user_id: int) -> str:
    """The stream of a person's own updates; its ``seq`` is their ``pts``."""
    return f"user:{user_id}"


class Item(Struct):
    """One item of a stream, as it travels. The body is decoded apart from the envelope (see
    :func:`read_item`), so that a body this reader does not know cannot fail the frame."""

    stream: str
    seq: int
    body: msgspec.Raw


class StreamDifference(Struct):
    """A page of one stream: the items after the position asked for, in order. ``seq`` is
    the position the page reaches; while ``more``, ask again from it."""

    stream: str
    items: list[Item]
    seq: int
    more: bool = False


class StreamItem(msgspec.Struct, frozen=True):
    """An item as a reader holds it: ``body`` decoded, or :class:`UnknownUpdate` (whose
    ``pts`` is then the item's ``seq``)."""

    stream: str
    seq: int
    body: Update | UnknownUpdate


_encoder = msgspec.msgpack.Encoder()


def item(stream: str, seq: int, body: Any) -> Item:
    """An item whose body is an update object (encoded here) or an encoded body."""
    raw = body if isinstance(body, msgspec.Raw) else msgspec.Raw(_encoder.encode(body))
    return Item(stream=stream, seq=seq, body=raw)


def read_item(wire: Item) -> StreamItem:
    body = read_update(wire.body)
    if isinstance(body, UnknownUpdate):
        body = msgspec.structs.replace(body, pts=wire.seq)
    return StreamItem(wire.stream, wire.seq, body)


def item_overhead(stream: str) -> int:
    """The bytes an item's envelope adds to its body, at most, for items of ``stream``: what
    a page budgeted on bodies alone must leave room for, per item."""
    return len(_encoder.encode(Item(stream=stream, seq=2**62, body=msgspec.Raw(b"\xc0")))) - 1
