"""What travels between regions (issue 12, deliverable 6; docs/architecture.md, "Regions"):
what happens in a private chat whose other side is homed in the receiving region (a message,
an edit, a delete for everyone, a read mark, a pin; typing, which is not stored), lookups of
people and of sticker sets. Every struct keeps unknown fields (a newer region may add some),
and a message of an unknown kind decodes as :class:`UnknownCross`, which the receiver
acknowledges and skips.

Each region keeps its own copy of the chat, whose message ids are its own; a message is named
across regions by its author and the author's ``random_id`` (:class:`MessageRef`), which both
copies' ``random_ids`` tables hold."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from . import limits
from .errors import InvalidArgument
from .keys import Ciphertext, CiphertextType
from .media import MAX_FILE_BYTES, MAX_FILE_NAME_CHARS, MAX_MIME_CHARS, Dimension, FileId, Media
from .stickers import (
    MAX_STICKERS_PER_SET, SET_NAME_PATTERN, EmojiList, Licence, Position, StickerTitle,
)
from .types import FwdFrom, MessageCiphertext, MessageSticker, Role, WhoCanAdd

RegionName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
ID = Annotated[int, Meta(ge=1, le=2**62)]
RandomId = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class RemoteUser(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What a region keeps of an account homed elsewhere: enough for a chat row to point at."""

    id: ID
    name: Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
    username: Annotated[str, Meta(max_length=limits.USERNAME_MAX)] | None = None
    #: who may add them to a group, as they chose at home (None: not said, or never chosen):
    #: a group's region in another region judges an add by it
    who_can_add: WhoCanAdd | None = None


class MessageRef(msgspec.Struct, frozen=True, array_like=True):
    """A message of a chat across regions: its author and the author's random_id."""

    sender_id: ID
    random_id: RandomId


Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
#: bytes of a file one request to its region answers at most (NATS's default payload is 1 MiB)
BLOB_CHUNK = 256 * 1024


class CrossFile(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A file a message carries (the file, or its thumbnail), as its sender's region stores
    it: the recipient's region fetches its bytes by ``digest`` (:class:`BlobAsk`), checks
    them against it, and keeps the file under the same id."""

    id: FileId
    digest: Digest
    size: Annotated[int, Meta(ge=0, le=MAX_FILE_BYTES)]
    name: Annotated[str, Meta(max_length=MAX_FILE_NAME_CHARS)] = ""
    mime: Annotated[str, Meta(max_length=MAX_MIME_CHARS)] = "application/octet-stream"
    kind: Annotated[str, Meta(max_length=32)] = "document"
    width: Dimension = 0
    height: Dimension = 0
    thumb: FileId | None = None
    parent: FileId | None = None


class BlobAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Asked of a file's region (``<prefix>.region.<name>.blob``): ``length`` bytes of the
    blob ``digest`` from ``offset``; only a file sent to another region is answered."""

    digest: Digest
    offset: Annotated[int, Meta(ge=0, le=MAX_FILE_BYTES)]
    length: Annotated[int, Meta(ge=1, le=BLOB_CHUNK)]


class BlobPart(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The answer: the bytes asked for (fewer only at the blob's end), or ``found`` false:
    no such blob sent across regions (it will not be: the message is skipped)."""

    found: bool
    data: Annotated[bytes, Meta(max_length=BLOB_CHUNK)] = b""


class CrossMessage(msgspec.Struct, frozen=True, tag="message", forbid_unknown_fields=False):
    """A private text message from ``sender`` (homed in ``origin``) to ``recipient_id``
    (homed in the region it is sent to). ``(sender.id, random_id)`` is its identity in every
    region: applying it twice writes it once."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    random_id: RandomId
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]
    #: a forward's header, as data: ``chat_id`` and ``message_id`` name the original in the
    #: sender's region (a region that predates it delivers the text without the header)
    fwd_from: FwdFrom | None = None
    #: the message it replies to (dropped where that message is not in the copy)
    reply_to: MessageRef | None = None
    #: a file, and the files behind it (the file and its thumbnail), stored by the
    #: recipient's region before the message is applied
    media: Media | None = None
    files: Annotated[list[CrossFile], Meta(max_length=2)] = []
    #: a sticker: its file (``file_id``, a SHA-256) is fetched as a file's is, and served
    #: there to anyone, as sticker files are; its set stays in the sender's region
    sticker: MessageSticker | None = None
    sticker_size: Annotated[int, Meta(ge=0, le=MAX_FILE_BYTES)] = 0

    def blobs(self) -> list[tuple[str, int]]:
        """The blobs (SHA-256, size) the recipient's region needs before applying it."""
        return blobs_of(self.files, self.sticker, self.sticker_size)


def blobs_of(files: list[CrossFile], sticker: MessageSticker | None,
             sticker_size: int) -> list[tuple[str, int]]:
    """The blobs (SHA-256, size) of a message's files and sticker."""
    wanted = [(f.digest, f.size) for f in files]
    if sticker is not None:
        wanted.append((sticker.file_id, sticker_size))
    return wanted


def media_in(files: list[CrossFile]) -> Media | None:
    """The file a message carries, from its file rows (the one not a thumbnail); None if
    they name none."""
    for f in files:
        if f.parent is None:
            return Media(kind=f.kind, file_id=f.id, name=f.name,  # type: ignore[arg-type]
                         size=f.size, mime=f.mime, width=f.width, height=f.height,
                         thumb=f.thumb)
    return None


class CrossEdit(msgspec.Struct, frozen=True, tag="edit", forbid_unknown_fields=False):
    """``sender`` edited their message ``random_id`` to ``text`` at ``date`` (authorized by
    their home region, where it happened)."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    random_id: RandomId
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


class CrossDelete(msgspec.Struct, frozen=True, tag="delete", forbid_unknown_fields=False):
    """``sender`` deleted these messages of the chat for everyone."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    messages: Annotated[list[MessageRef], Meta(min_length=1, max_length=limits.MAX_IDS_PER_CALL)]
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


class CrossRead(msgspec.Struct, frozen=True, tag="read", forbid_unknown_fields=False):
    """``sender`` read the chat up to ``recipient_id``'s message ``random_id`` (the newest of
    theirs the mark passed): their region tells the author's, which tells the author."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    random_id: RandomId
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


class CrossPin(msgspec.Struct, frozen=True, tag="pin", forbid_unknown_fields=False):
    """``sender`` pinned ``message`` in the private chat (None: unpinned it)."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]
    message: MessageRef | None = None


# -- groups spanning regions (docs/architecture.md, "Regions", "Groups across regions") ------
# A group lives in its creator's region, which alone decides its members, its rules and its
# message ids; each other region with members keeps a replica, written only by what the
# group's region ships. A group's id, and its messages' ids, are the same in every region
# (chat ids are ranged per region, as user ids are), so in these kinds ``recipient_id`` is
# the group's id, and a message is still named by its author and random_id, as in a private
# chat, so that the private chats' paths apply.

class GroupMember(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A member of a group as its region keeps it (``home``: where the account lives; None:
    in the group's region)."""

    user: RemoteUser
    role: Role
    joined: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]
    history_from: Annotated[int, Meta(ge=0, le=2**62)]
    home: RegionName | None = None


class CrossGroup(msgspec.Struct, frozen=True, tag="group", forbid_unknown_fields=False):
    """The group ``recipient_id`` as it now stands, after ``sender`` changed it: its title and
    size, and the members that joined or changed (``joined``, upserted) or left (``left``).
    A region that gets its first member is sent every member, in parts of at most
    :data:`GROUP_PART` (a frame holds that many); applying one twice changes nothing."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]
    kind: Literal["group", "supergroup"]
    title: Annotated[str, Meta(max_length=limits.MAX_TITLE_CHARS)]
    created: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]
    member_count: Annotated[int, Meta(ge=0, le=limits.MAX_GROUP_MEMBERS)]
    last_message_id: Annotated[int, Meta(ge=0, le=2**62)]
    joined: Annotated[list[GroupMember], Meta(max_length=limits.MAX_IDS_PER_CALL)] = []
    left: Annotated[list[ID], Meta(max_length=limits.MAX_IDS_PER_CALL)] = []
    #: the first part of every member, to a region that had none (again): the replica first
    #: forgets the members homed elsewhere it kept, some of whom left while it was unfed
    reset: bool = False
    #: an end-to-end encrypted group (its messages carry ciphertext only; a region that
    #: predates it keeps a plain replica, whose messages then fail its check: upgrade first)
    secret: bool = False


class CrossGroupMessage(CrossMessage, frozen=True, tag="group_message", kw_only=True):
    """A message of the group ``recipient_id``, numbered ``message_id`` by the group's region
    (the replica keeps that id); ``reply_to`` names its message by author and random_id."""

    message_id: ID
    #: the message of an end-to-end encrypted group (its ``text`` empty): opaque bytes
    ciphertext: MessageCiphertext | None = None


class CrossGroupEdit(CrossEdit, frozen=True, tag="group_edit"):
    """``sender`` edited their message ``random_id`` of the group ``recipient_id``."""


class CrossGroupDelete(CrossDelete, frozen=True, tag="group_delete"):
    """``sender`` deleted these messages of the group ``recipient_id`` for everyone."""


class CrossGroupRead(msgspec.Struct, frozen=True, tag="group_read",
                     forbid_unknown_fields=False):
    """``sender`` read the group ``recipient_id`` up to ``message_id`` (the same id in every
    copy): each region tells the authors homed there. From a replica's region it goes to the
    group's region, which passes it on to the other regions with members."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    message_id: ID
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


#: members one CrossGroup carries at most
GROUP_PART = limits.MAX_IDS_PER_CALL


class CrossEnvelope(msgspec.Struct, frozen=True, tag="envelope", forbid_unknown_fields=False):
    """An end-to-end envelope from ``sender``'s device ``sender_device`` (homed in ``origin``)
    to the device ``device_id`` homed in the receiving region, which checks the tie between
    sender and the device's owner on its own copy and appends it to that device's inbox
    (docs/architecture.md, "Regions", "Secret chats across regions"). One a stream message:
    an envelope is at most 16 KiB, a stream message at most one frame."""

    origin: RegionName
    sender: RemoteUser
    sender_device: ID
    device_id: ID
    ciphertext_type: CiphertextType
    ciphertext: Ciphertext
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


Cross = (CrossMessage | CrossEdit | CrossDelete | CrossRead | CrossPin | CrossGroup
         | CrossGroupMessage | CrossGroupEdit | CrossGroupDelete | CrossGroupRead
         | CrossEnvelope)
GroupCross = CrossGroup | CrossGroupMessage | CrossGroupEdit | CrossGroupDelete | CrossGroupRead
#: the kinds an outbox row may hold, by tag
KINDS = ("message", "edit", "delete", "read", "pin", "group", "group_message", "group_edit",
         "group_delete", "group_read", "envelope")


class UnknownCross(msgspec.Struct, frozen=True, tag="unknown"):
    """The fallback for a kind a newer region sends: logged, acknowledged and skipped."""


class CrossTyping(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """``sender_id`` (homed in ``origin``) is typing in their private chat with
    ``recipient_id``: published on ``<prefix>.region.<recipient's region>.typing`` with core
    NATS, never stored (lost while that region is away, as typing is when a device is)."""

    origin: RegionName
    sender_id: ID
    recipient_id: ID


class Lookup(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Asked of a user's home region: by phone (E.164) or by username (one of the two)."""

    phone: Annotated[str, Meta(max_length=limits.MAX_PHONE_CHARS)] | None = None
    username: Annotated[str, Meta(max_length=limits.USERNAME_MAX)] | None = None


class Found(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    user: RemoteUser | None = None


_cross_decoder: msgspec.msgpack.Decoder[Cross | UnknownCross] = msgspec.msgpack.Decoder(
    Cross | UnknownCross)


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(value)


def cross_of(kind: str, fields: dict[str, object]) -> Cross:
    """The wire struct of an outbox row (its columns and its body's fields, as a dict);
    InvalidArgument if they do not make one."""
    try:
        made: Cross = msgspec.convert({**fields, "type": kind}, Cross)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"not a cross-region {kind}: {exc}") from None
    return made


def decode_cross(data: bytes) -> Cross | UnknownCross:
    """A message from another region; an unknown kind decodes as UnknownCross, anything
    malformed raises InvalidArgument (the caller logs and drops it)."""
    if len(data) > limits.MAX_FRAME_BYTES:
        raise InvalidArgument("cross-region message too large")
    try:
        return _cross_decoder.decode(data)
    except msgspec.ValidationError as exc:
        if "Invalid value" in str(exc) and "$.type" in str(exc):
            return UnknownCross()
        raise InvalidArgument(f"malformed cross-region message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"malformed cross-region message: {exc}") from None


# -- sticker sets (docs/architecture.md, "Regions": sticker sets) ---------------------------------
#: bytes of one sticker's image at most (pigeon.media.stickers.MAX_STICKER_BYTES)
MAX_STICKER_FILE_BYTES = 512 * 1024


class SetAsk(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Asked of every other region (``<prefix>.region.<name>.sticker_set``): the published
    set of this short name, if its author is homed there."""

    name: Annotated[str, Meta(pattern=SET_NAME_PATTERN)]


class CrossSticker(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One sticker of a set from another region; its image is fetched by ``file_id`` (its
    SHA-256) as a file's blob is."""

    index: Position
    emoji: EmojiList
    file_id: Digest
    width: Dimension
    height: Dimension
    animated: bool = False
    size: Annotated[int, Meta(ge=1, le=MAX_STICKER_FILE_BYTES)] = MAX_STICKER_FILE_BYTES


class CrossStickerSet(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A published set as its author's region has it."""

    author: RemoteUser
    name: Annotated[str, Meta(pattern=SET_NAME_PATTERN)]
    title: StickerTitle
    licence: Licence = ""
    stickers: Annotated[list[CrossSticker], Meta(max_length=MAX_STICKERS_PER_SET)] = []


class SetFound(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    set: CrossStickerSet | None = None
