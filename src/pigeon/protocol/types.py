"""The objects that requests, results and updates carry.

Rule for schema evolution (as msgspec recommends): a field added later always has a default,
so an older peer's frames still decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from . import limits, versions
from .resumption import MAX_TICKET_CHARS

ID = Annotated[int, Meta(ge=1, le=2**62)]
RandomId = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Text = Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]
#: an end-to-end encrypted message's body: opaque to the server, which only bounds its size
MessageCiphertext = Annotated[bytes, Meta(min_length=1,
                                          max_length=limits.MAX_MESSAGE_CIPHERTEXT_BYTES)]
Name = Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
Title = Annotated[str, Meta(max_length=limits.MAX_TITLE_CHARS)]
Phone = Annotated[str, Meta(max_length=limits.MAX_PHONE_CHARS)]
Username = Annotated[str, Meta(max_length=limits.USERNAME_MAX + 1)]  # +1 for a leading '@'
Token = Annotated[str, Meta(max_length=limits.MAX_TOKEN_CHARS)]
Code = Annotated[str, Meta(max_length=limits.MAX_CODE_CHARS)]
IdList = Annotated[list[ID], Meta(max_length=limits.MAX_IDS_PER_CALL)]
# Every integer a peer sends is bounded so that it fits SQLite's signed 64-bit INTEGER (a
# bigger one raised OverflowError deep in the store: issue 7, finding 9) and a sensible range.
Offset = Annotated[int, Meta(ge=0, le=limits.MAX_OFFSET)]
Date = Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]  # seconds since the epoch; no NaN
# Enums as a client sends them: closed sets, so that the server refuses what it does not know.
# What the server sends back is open (:class:`OpenEnums`): a value added by a later version
# reads as "unknown" instead of failing the frame. ``versions.ENUMS`` lists both, by version.
Role = Literal["owner", "admin", "member"]
ChatKind = Literal["private", "group", "supergroup"]
# Who may add you to a group without asking (docs/protocol.md, "Groups and consent").
WhoCanAdd = Literal["everyone", "contacts", "nobody"]
# Whose first private message reaches you directly; the others' arrive as a message request
# ("contacts") or are refused ("nobody"): docs/protocol.md, "Blocks, requests and contacts".
WhoCanMessage = Literal["everyone", "contacts", "nobody"]
UNKNOWN = versions.UNKNOWN
if TYPE_CHECKING:
    # The same, as a reader sees them: one of the values above, or UNKNOWN.
    SeenRole = Role | Literal["unknown"]
    SeenChatKind = ChatKind | Literal["unknown"]
    SeenWhoCanAdd = WhoCanAdd | Literal["unknown"]
    SeenWhoCanMessage = WhoCanMessage | Literal["unknown"]
else:
    # On the wire, any string: a Literal would make msgspec fail the frame on a new value.
    # OpenEnums.__post_init__ keeps the promise made to the type checker above.
    SeenRole = SeenChatKind = SeenWhoCanAdd = SeenWhoCanMessage = str


class Struct(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False):
    """Base for wire objects: keyword-only, defaults omitted on the wire."""


class OpenEnums(Struct):
    """A wire object with open-enum fields (``open_fields``: field name -> enum name in
    ``versions.ENUMS``). On the wire they are strings; once decoded (or built) each holds a
    value this process knows, or ``"unknown"``. msgspec tagged unions and Literals are closed
    (a value outside them fails the whole frame), hence plain strings checked here."""

    open_fields: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for name, enum in self.open_fields.items():
            value = getattr(self, name)
            if value is not None and value not in versions.ENUMS[enum]:
                setattr(self, name, UNKNOWN)


class User(Struct):
    id: int
    name: str
    username: str | None = None
    phone: str | None = None  # only ever filled in for the user themself or by their consent


class Me(OpenEnums):
    open_fields = {"who_can_add": "WhoCanAdd", "who_can_message": "WhoCanMessage"}

    user: User
    phone: str
    phone_discoverable: bool = False
    who_can_add: SeenWhoCanAdd = "contacts"
    who_can_message: SeenWhoCanMessage = "contacts"


class State(Struct):
    """Where a user's update sequence stands: the last ``pts`` the server assigned (the head
    of their own stream, ``user:<id>``)."""

    pts: int
    date: float
    # Version 2: the head of every other stream the user follows, by name: the streams of
    # the large groups (``chat:<id>``) they are a member of.
    streams: dict[str, int] = {}


class Budget(Struct):
    """What a logged-in device may send without being refused, announced in ``welcome``:
    calls (all methods) and, among them, sends, each as a token bucket (``burst`` at once,
    then ``per_second``). A client that paces itself within it is never rate-limited."""

    calls_per_second: float
    call_burst: int
    sends_per_second: float
    send_burst: int


class FwdFrom(Struct):
    sender_id: int
    chat_id: int
    message_id: int
    date: float


class MessageSticker(Struct):
    """A sticker sent as a message (issue 10): its set's name, its place in the set when sent
    (from 1), its emoji and its file (SHA-256; ``/stickers/files/<file_id>.webp``). The file
    is what stays true when the artist reorders the set later."""

    set: str
    index: int
    emoji: str
    file_id: str


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
    sticker: MessageSticker | None = None  # version 2: a sticker message (text "")
    # A photo or document (issue 10); ``text`` is then its caption, which may be empty.
    media: Media | None = None
    # In an end-to-end encrypted group: the Megolm ciphertext, ``text`` empty. A reader that
    # does not know the field (older SDKs) sees an empty message, never a decoding error.
    ciphertext: bytes | None = None


class Chat(OpenEnums):
    open_fields = {"kind": "ChatKind", "role": "Role"}

    id: int
    kind: SeenChatKind
    title: str = ""
    member_count: int = 0
    peer_id: int | None = None      # private chats: the other person
    role: SeenRole | None = None    # the caller's role; None when no longer a member
    last_message_id: int = 0
    invited_by: int | None = None   # set when the caller is invited (not yet a member)
    invited: list[int] = []         # answers to create_group/add_members: who was invited
                                    # rather than added (they must accept)
    pinned_message_id: int = 0      # the chat's pinned message, the same for every member
    # Until when the caller muted the chat (0: not muted). Per person, so the views of a chat
    # announced to all its members leave it out (None): a reader keeps what it knew.
    muted_until: float | None = None
    # An end-to-end encrypted group: its messages carry ciphertext only (``Message.ciphertext``)
    secret: bool = False


class Dialog(Struct):
    chat: Chat
    last_message: Message | None = None
    unread_count: int = 0
    read_inbox_max_id: int = 0
    read_outbox_max_id: int = 0
    date: float = 0.0   # where the dialog sorts: its last message's date, or when you joined


class Invitation(Struct):
    """An invitation to a group, waiting for its invitee to accept or decline."""

    chat: Chat
    inviter: User
    date: float


class Contact(Struct):
    """Someone in the caller's contacts, with the name the caller gave them ("" for none)."""

    user: User
    name: str = ""
    date: float = 0.0


class MessageRequest(Struct):
    """A private chat whose other side wrote first and is a stranger to the caller: it stays
    out of the chats list until accepted (``requests.accept``)."""

    chat: Chat
    peer: User
    last_message: Message | None = None
    date: float = 0.0


class Member(OpenEnums):
    open_fields = {"role": "Role"}

    user: User
    role: SeenRole


class SessionInfo(Struct):
    id: int
    device: str
    address: str
    created: float
    last_active: float
    current: bool = False


class PowChallenge(Struct):
    """A stateless, signed proof-of-work challenge (see docs/shield.md). ``difficulty`` 0 means
    no work is needed now."""

    token: Annotated[str, Meta(max_length=256)]
    difficulty: int
    expires_in: float


class PowSolution(Struct):
    token: Annotated[str, Meta(max_length=256)]
    nonce: Annotated[int, Meta(ge=0, le=2**63 - 1)]


class SentCode(Struct):
    code_id: str
    expires_in: int
    length: int
    # Where the code went: "sms", or "app" (a message from the Pigeon service account to the
    # account's logged-in devices). A plain str, so later ways of delivery decode everywhere.
    delivery: str = "sms"


class Authorization(Struct):
    user: User
    token: str
    session_id: int
    state: State
    # The resumption ticket for the next hello (issue 13).
    ticket: Annotated[str, Meta(max_length=MAX_TICKET_CHARS)] | None = None


class SentMessage(Struct):
    message: Message
    pts: int


class ReadResult(Struct):
    pts: int
    unread_count: int


class Affected(Struct):
    """Result of a call that changed state: the caller's new pts (0 if nothing changed)."""

    pts: int = 0
    count: int = 0


class Ok(Struct):
    pass


# Last: media.py builds on the bases above (Struct, OpenEnums), and Message refers to it.
from .media import Media  # noqa: E402
