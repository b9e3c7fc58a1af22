"""Updates: everything a user must see. Each carries that user's next ``pts`` (gap-free).

From version 2 an update travels as the body of a stream item (:mod:`.streams`), whose
``seq`` is its position; its ``pts`` then repeats that position on the user's own stream.
Update types form an open union: :func:`read_update` turns a body of a type this reader does
not know (a later version's) into :class:`UnknownUpdate`, which the SDK skips while still
counting its position.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import versions
from .types import Chat, Message, State, Struct


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
    """The user read a chat up to ``max_id`` on one of their devices."""

    chat_id: int
    max_id: int
    unread_count: int = 0


class ReadOutbox(Update, tag="read_outbox"):
    """Someone else in the chat read the user's messages up to ``max_id``."""

    chat_id: int
    max_id: int


class ChatUpdate(Update, tag="chat"):
    """A chat was created, renamed, or its membership changed; ``chat.role`` is None once the
    user is no longer a member."""

    chat: Chat


class Typing(Update, tag="typing"):
    """Ephemeral: pushed to online devices, never stored, pts always 0."""

    chat_id: int
    user_id: int


class Envelope(Update, tag="envelope"):
    """Version 2, on a device inbox only (``device:<id>``): opaque bytes another device sent
    this one (``envelopes.send``). The server never reads ``ciphertext``; ``type`` is the
    sender's (Olm: 0 pre-key, 1 normal)."""

    sender_id: int
    sender_device: int
    type: int
    ciphertext: bytes


class KeysLow(Update, tag="keys_low"):
    """Version 2, ephemeral (``pts`` 0) on a device inbox: the server holds only
    ``one_time_keys`` of this device's one-time keys; upload more (``keys.upload``)."""

    one_time_keys: int


class StickersInstalled(Update, tag="stickers_installed"):
    """Version 2, on the user's own stream: the sticker sets they have installed now, by
    name (newest last), after an install or uninstall on any of their devices. The whole
    list, so that a device that missed some simply takes the last."""

    names: list[str]


# Every update type this code knows (versions.UPDATE_SINCE says which version brought each).
# Tests teach a process more at run time with :func:`register`.
AnyUpdate = (NewMessage | EditMessage | DeleteMessages | ReadInbox | ReadOutbox | ChatUpdate
             | Typing | Envelope | KeysLow | StickersInstalled)


class Difference(Struct):
    """What ``updates.get_difference`` answers. Read by an SDK, ``updates`` may also hold
    :class:`UnknownUpdate` for types it does not know."""

    updates: list[AnyUpdate]
    state: State
    more: bool = False


class UnknownUpdate(msgspec.Struct, frozen=True):
    """An update this reader could not read: of a type it does not know (``error`` empty),
    or not decodable as its type (``error`` says why: a bug of the sender's). Never sent;
    an SDK skips it and still counts its position, so that the stream moves on."""

    pts: int
    type: str
    raw: bytes
    error: str = ""


#: every update type this process knows, by tag
UPDATE_TYPES: dict[str, type[Update]] = {
    msgspec.inspect.type_info(cls).tag: cls for cls in AnyUpdate.__args__  # type: ignore[attr-defined]
}


class _Head(msgspec.Struct):
    """What a reader looks at in a body it could not decode: its type and position."""

    u: Any = None
    pts: Any = 0


class _Bodies:
    """Decodes update bodies of every registered type (one msgspec tagged union, rebuilt when
    a type is registered). ``decode`` is strict: for the server reading its own log."""

    def __init__(self) -> None:
        self._decoder = self._build()

    @staticmethod
    def _build() -> msgspec.msgpack.Decoder[Any]:
        types = tuple(UPDATE_TYPES.values())
        union = types[0]
        for t in types[1:]:
            union = union | t  # type: ignore[assignment]
        return msgspec.msgpack.Decoder(union)

    def rebuild(self) -> None:
        self._decoder = self._build()

    def decode(self, raw: bytes | msgspec.Raw) -> AnyUpdate:
        update: AnyUpdate = self._decoder.decode(raw)
        return update


body_decoder = _Bodies()
_head_decoder = msgspec.msgpack.Decoder(_Head)


def read_update(raw: bytes | msgspec.Raw) -> Update | UnknownUpdate:
    """One update body as a reader takes it: decoded, or :class:`UnknownUpdate` (never an
    exception) so that one update a reader cannot read does not stop the whole stream."""
    try:
        return body_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        failure = exc
    try:
        head = _head_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        head = _Head()
    tag = head.u if isinstance(head.u, str) else ""
    pts = head.pts if type(head.pts) is int else 0
    error = f"undecodable {tag or 'update'}: {failure}" if tag in UPDATE_TYPES or not tag else ""
    return UnknownUpdate(pts=pts, type=tag, raw=bytes(raw), error=error)


def register(cls: type[Update], since: int) -> None:
    """Teach this process an update type of protocol version ``since``."""
    tag = msgspec.inspect.type_info(cls).tag  # type: ignore[attr-defined]
    UPDATE_TYPES[tag] = cls
    versions.register_update(tag, since)
    body_decoder.rebuild()

