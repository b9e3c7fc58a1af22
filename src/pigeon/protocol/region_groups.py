"""A call in a group homed in another region, forwarded there by the caller's region (issue
12; docs/architecture.md, "Groups across regions"): request/reply on
``<prefix>.region.<group's region>.group``. The group's region alone decides (its members,
its rules, its message ids), commits, ships the outcome to every region with members, and
answers; the caller's region answers its client only after that answer. Unknown fields are
kept for newer regions; a method the group's region does not know is refused by it
(NOT_SUPPORTED_ACROSS_REGIONS, answered: not dropped)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from . import limits
from .media import MAX_FILE_BYTES
from .regions import ID, CrossFile, RandomId, RegionName, RemoteUser, blobs_of
from .types import FwdFrom, MessageCiphertext, MessageSticker

#: what a member homed elsewhere may ask of a group's region
GroupMethod = Literal["messages.send", "messages.edit", "messages.delete", "chats.add_members",
                      "chats.remove_member", "chats.set_role", "chats.set_title"]


class GroupSend(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A text message, a reply, or a forward (its header as data: its chat and message ids
    are the caller's region's, where the service account's rule was checked), or the
    ciphertext of an end-to-end encrypted group's message, or a file or a sticker: their
    rows as the caller's region stores them, whose bytes the group's region fetches from
    ``blobs_from`` (a subject the caller's region answers on for these blobs only, while the
    call lasts) before it sends. A forwarded file is NOT_SUPPORTED_ACROSS_REGIONS, refused
    by the caller's region."""

    chat_id: ID
    random_id: RandomId
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)] = ""
    reply_to: ID | None = None
    fwd_from: FwdFrom | None = None
    #: a message of an end-to-end encrypted group (then ``text`` is empty)
    ciphertext: MessageCiphertext | None = None
    #: a file and its thumbnail (the message's media is the one that is no thumbnail)
    files: Annotated[list[CrossFile], Meta(max_length=2)] = []
    sticker: MessageSticker | None = None
    sticker_size: Annotated[int, Meta(ge=0, le=MAX_FILE_BYTES)] = 0
    blobs_from: Annotated[str, Meta(max_length=200)] = ""

    def blobs(self) -> list[tuple[str, int]]:
        return blobs_of(self.files, self.sticker, self.sticker_size)


class GroupCall(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """``actor_id`` (homed in ``origin``, a member of the group there) calls ``method`` with
    ``params`` (the method's own params, msgpack, or :class:`GroupSend`); ``people``: the
    accounts homed in ``origin`` that the call names, so that the group's region knows them."""

    origin: RegionName
    actor_id: ID
    method: Annotated[str, Meta(max_length=64)]  # a GroupMethod; another: NOT_SUPPORTED_...
    params: Annotated[bytes, Meta(max_length=limits.MAX_FRAME_BYTES)]
    people: Annotated[list[RemoteUser], Meta(max_length=limits.MAX_IDS_PER_CALL)] = []


class GroupAnswer(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The result (msgpack of the method's result type), or the typed error."""

    result: Annotated[bytes, Meta(max_length=limits.MAX_SERVER_FRAME_BYTES)] | None = None
    code: Annotated[str, Meta(max_length=64)] | None = None
    message: Annotated[str, Meta(max_length=1000)] = ""
    #: when to try again (RATE_LIMITED, OVERLOADED), as the caller's own region would say
    retry_after: Annotated[float, Meta(ge=0, le=86_400)] | None = None
