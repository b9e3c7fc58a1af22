"""The rows and records the Store interface (:mod:`.base`) takes and returns: what a
backend reads and writes, as plain immutable values, shared by every backend."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from pigeon.domain.streams import chat_of, chat_stream
from pigeon.protocol.types import Chat, Message, Role

SERVICE_NAME = "Pigeon"


class UserRecord(msgspec.Struct, frozen=True):
    id: int
    phone: str
    name: str
    username: str | None
    phone_discoverable: bool
    pts: int


class SessionRecord(msgspec.Struct, frozen=True):
    id: int
    user_id: int
    device: str
    address: str
    created: float
    last_active: float


class UploadRecord(msgspec.Struct, frozen=True):
    """An upload in progress (its parts are files in the blob store's scratch directory), or
    completed (``file_id`` set; kept until it expires, so that a repeated ``complete`` whose
    answer was lost gets the same file)."""

    id: str
    user_id: int
    size: int
    name: str
    part_size: int
    kind: str           # what the client asked for: auto, photo or document
    keep_location: bool
    created: float
    file_id: str | None = None


class FileRecord(msgspec.Struct, frozen=True):
    """A stored file: its bytes are the blob ``digest``; ``parent``: the photo a thumbnail
    belongs to (it is readable by whoever reads the photo)."""

    id: str
    owner_id: int
    digest: str
    size: int
    name: str
    mime: str
    kind: str
    created: float
    width: int = 0
    height: int = 0
    thumb: str | None = None
    parent: str | None = None


class LoginCode(msgspec.Struct, frozen=True):
    id: str
    phone: str
    code_hash: bytes
    expires: float
    attempts: int


class Push(NamedTuple):
    """One update, to be delivered to each ``(user_id, pts)`` in ``targets``.

    ``update`` carries ``pts=0``; the deliverer stamps each recipient's own pts.
    """

    update: Any
    targets: list[tuple[int, int]]

    @property
    def stream(self) -> str:
        """The stream the update is an item of, when it is not each target's own."""
        return ""


class ChatPush(Push):
    """One item of a large chat's stream (``chat:<id>``), for whoever follows it: no
    targets; its ``update`` already carries its position there as ``pts``."""

    __slots__ = ()

    @property
    def stream(self) -> str:
        return chat_stream(chat_of(self.update))


class StreamPage(NamedTuple):
    """A page of a stream: ``(seq, body)`` items in order; ``seq`` the position it reaches
    (ask again from it while ``more``)."""

    items: list[tuple[int, Any]]
    seq: int
    more: bool


class NewSticker(NamedTuple):
    """A sticker to append to a set: its normalised file, already stored, and its emoji
    (checked by :func:`pigeon.domain.stickers.emoji_list`)."""

    file_id: str
    emoji: list[str]
    width: int
    height: int
    animated: bool
    size: int


class StoreStats(NamedTuple):
    """What a backend tells /metrics about its writes, whatever it writes to."""

    commits: int  # transactions committed (a group commit counts once)
    writes: int  # write operations they carried
    commit_seconds: float  # time spent committing
    last_batch: int  # operations in the last commit
    # a pooled backend's (PostgreSQL); an embedded one leaves them at 0
    connections: int = 0  # connections open now
    retried: int = 0  # writes retried alone after their batch failed or refused them
    failed_batches: int = 0  # batches lost to a connection failure
    together: int = 0  # writes done together with others of their kind (postgres_bulk)


class MemberRecord(NamedTuple):
    user: UserRecord
    role: Role


class InvitationRecord(NamedTuple):
    chat: Chat
    inviter: UserRecord
    date: float


class ContactRecord(NamedTuple):
    user: UserRecord
    name: str
    date: float


class RequestRecord(NamedTuple):
    chat: Chat
    peer: UserRecord
    last_message: Message | None
    date: float


class ReportRecord(NamedTuple):
    id: int
    reporter_id: int
    chat_id: int
    message_id: int
    sender_id: int
    text: str
    reason: str
    date: float
