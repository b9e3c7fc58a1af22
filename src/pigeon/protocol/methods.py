"""Every method: its name on the wire, its parameters and its result type.

``METHODS`` is the one table that both the server's dispatcher and the SDK read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from msgspec import Meta

from . import limits
from .types import (
    ID,
    Affected,
    Authorization,
    Chat,
    Code,
    Contact,
    Date,
    Dialog,
    IdList,
    Invitation,
    Me,
    Member,
    Message,
    MessageCiphertext,
    MessageRequest,
    Name,
    Offset,
    Ok,
    Phone,
    PowChallenge,
    PowSolution,
    RandomId,
    ReadResult,
    Role,
    SentCode,
    SentMessage,
    SessionInfo,
    State,
    Struct,
    Text,
    Title,
    Token,
    User,
    Username,
    WhoCanAdd,
    WhoCanMessage,
)
from .keys import (
    MAX_DEVICES_PER_CALL,
    MAX_ENVELOPES_PER_CALL,
    MAX_KEYS_PER_UPLOAD,
    MAX_USERS_PER_QUERY,
    ClaimedKey,
    DeviceKeys,
    Envelope,
    IdentityKeys,
    KeyCounts,
    SignedKey,
)
from .stickers import (
    Emoji,
    FoundSticker,
    Installed,
    Licence,
    Position,
    Query,
    SearchLimit,
    SetName,
    StickerTitle,
    StickerSet,
    StickerSetInfo,
)
from .media import FileId
from .streams import Seq, StreamDifference, StreamName
from .updates import Difference


class Params(Struct):
    """Base of method parameters."""


# -- auth (callable before login) ---------------------------------------------------------
class GetChallenge(Params):
    pass


class SendCode(Params):
    phone: Phone
    pow: PowSolution | None = None
    sms: bool = False  # True: by SMS even if the account has logged-in devices


class SignIn(Params):
    phone: Phone
    code_id: Token
    code: Code
    name: Name | None = None          # given: sign up if the number is new
    device: Name = ""
    pow: PowSolution | None = None


class LogOut(Params):
    pass


# -- account --------------------------------------------------------------------------------
class GetMe(Params):
    pass


class UpdateProfile(Params):
    name: Name


class SetUsername(Params):
    username: Username | None = None  # None releases it


class SetPrivacy(Params):
    """Each setting left out (None) stays as it is."""

    phone_discoverable: bool | None = None
    who_can_add: WhoCanAdd | None = None
    who_can_message: WhoCanMessage | None = None


# -- users ----------------------------------------------------------------------------------
class ResolveUsername(Params):
    username: Username


class ResolvePhone(Params):
    phone: Phone


class GetUsers(Params):
    ids: IdList


# -- sessions -------------------------------------------------------------------------------
class ListSessions(Params):
    pass


class TerminateSession(Params):
    session_id: ID


class TerminateOtherSessions(Params):
    pass


# -- chats ----------------------------------------------------------------------------------
class OpenPrivate(Params):
    user_id: ID


class CreateGroup(Params):
    title: Title
    member_ids: IdList = []
    # Version 2: a very large group (kind "supergroup", up to the server's
    # max_supergroup_members) whose updates travel once, on its own stream chat:<id>.
    large: bool = False
    # An end-to-end encrypted group: the server takes only ciphertext messages in it.
    secret: bool = False


class AddMembers(Params):
    chat_id: ID
    user_ids: IdList


class RemoveMember(Params):
    chat_id: ID
    user_id: ID


class LeaveChat(Params):
    chat_id: ID


class SetRole(Params):
    chat_id: ID
    user_id: ID
    role: Role


class SetTitle(Params):
    chat_id: ID
    title: Title


class ListChats(Params):
    """One page of dialogs, newest first. The next page starts after the last dialog of this
    one: ``offset_date`` = its ``date``, ``offset_chat_id`` = its chat's id. An empty page is
    the end (a page may hold fewer than ``limit`` dialogs when they are large)."""

    limit: Annotated[int, Meta(ge=1, le=limits.MAX_DIALOG_PAGE)] = limits.MAX_DIALOG_PAGE
    offset_date: Date | None = None
    offset_chat_id: ID | None = None


class GetChat(Params):
    chat_id: ID


class ListMembers(Params):
    chat_id: ID
    offset: Offset = 0
    limit: Annotated[int, Meta(ge=1, le=limits.MAX_HISTORY_PAGE)] = 100


class MuteChat(Params):
    """Mute the chat for the caller until ``until`` (seconds since the epoch; the protocol's
    largest date is for ever); 0, or any time already past, unmutes it."""

    chat_id: ID
    until: Date = 0.0


class PinMessage(Params):
    """Pin ``message_id`` in the chat for every member; None unpins."""

    chat_id: ID
    message_id: ID | None = None


class ListInvitations(Params):
    pass


class AcceptInvite(Params):
    chat_id: ID


class DeclineInvite(Params):
    chat_id: ID


# -- messages -------------------------------------------------------------------------------
class SendMessage(Params):
    """In an end-to-end encrypted group (``Chat.secret``): ``ciphertext`` and no ``text``
    (ENCRYPTION_REQUIRED otherwise); elsewhere ``text`` only (CHAT_NOT_ENCRYPTED)."""

    chat_id: ID
    random_id: RandomId
    text: Text = ""  # with ``media``, its caption: may then be empty
    reply_to: ID | None = None
    media: FileId | None = None  # a file uploaded over HTTP (docs/protocol.md, "Media")
    ciphertext: MessageCiphertext | None = None


class ForwardMessage(Params):
    from_chat_id: ID
    message_id: ID
    to_chat_id: ID
    random_id: RandomId


class EditMessageText(Params):
    chat_id: ID
    message_id: ID
    text: Text


class DeleteMessages(Params):
    chat_id: ID
    message_ids: IdList
    for_everyone: bool = False


class History(Params):
    chat_id: ID
    before_id: ID | None = None
    limit: Annotated[int, Meta(ge=1, le=limits.MAX_HISTORY_PAGE)] = 50


class ReadHistory(Params):
    chat_id: ID
    max_id: Annotated[int, Meta(ge=0, le=2**62)]


class SetTyping(Params):
    chat_id: ID


# -- safety: blocks, reports, contacts, message requests (issue 11) ---------------------------
SafetyPage = Annotated[int, Meta(ge=1, le=limits.MAX_SAFETY_PAGE)]
Reason = Annotated[str, Meta(max_length=limits.MAX_REASON_CHARS)]


class Block(Params):
    user_id: ID


class Unblock(Params):
    user_id: ID


class SafetyListing(Params):
    """One page of a listing that grows with what the account keeps (blocks, contacts,
    requests): ``offset`` to page on, at most ``limit`` (100) a page."""

    offset: Offset = 0
    limit: SafetyPage = limits.MAX_SAFETY_PAGE


class ListBlocked(SafetyListing):
    pass


class ReportMessage(Params):
    chat_id: ID
    message_id: ID
    reason: Reason = ""


class AddContact(Params):
    user_id: ID
    name: Name = ""


class RemoveContact(Params):
    user_id: ID


class ListContacts(SafetyListing):
    pass


class ListRequests(SafetyListing):
    pass


class AcceptRequest(Params):
    chat_id: ID


class DeclineRequest(Params):
    chat_id: ID


# -- updates --------------------------------------------------------------------------------
class GetState(Params):
    pass


class GetDifference(Params):
    pts: Annotated[int, Meta(ge=0, le=2**62)]
    limit: Annotated[int, Meta(ge=1, le=limits.MAX_DIFFERENCE_PAGE)] = limits.MAX_DIFFERENCE_PAGE


class GetStreamDifference(Params):
    """Version 2: the items of one stream after position ``seq`` (0: from its start)."""

    stream: StreamName
    seq: Seq
    limit: Annotated[int, Meta(ge=1, le=limits.MAX_DIFFERENCE_PAGE)] = limits.MAX_DIFFERENCE_PAGE


class AckStream(Params):
    """Version 2: the caller's device has the items of its inbox (``device:<session id>``)
    up to ``seq``; the server deletes them."""

    stream: StreamName
    seq: Seq


# -- device keys and envelopes (version 2; pigeon.protocol.keys) ------------------------------
class UploadKeys(Params):
    """Publish the caller's device keys: its identity keys (once; the same again is a no-op),
    new one-time keys, a new fallback key. Each left out stays as it is; nothing at all asks
    for the counts."""

    identity: IdentityKeys | None = None
    one_time_keys: Annotated[list[SignedKey], Meta(max_length=MAX_KEYS_PER_UPLOAD)] = []
    fallback_key: SignedKey | None = None


class QueryKeys(Params):
    """The devices of these users (that the caller may see) with their identity keys."""

    user_ids: Annotated[list[ID], Meta(min_length=1, max_length=MAX_USERS_PER_QUERY)]


class ClaimKeys(Params):
    """One key of each of these devices to start an Olm session with."""

    device_ids: Annotated[list[ID], Meta(min_length=1, max_length=MAX_DEVICES_PER_CALL)]


class SendEnvelopes(Params):
    """Opaque ciphertext for each of these devices, into their inboxes (``device:<id>``)."""

    envelopes: Annotated[list[Envelope], Meta(min_length=1, max_length=MAX_ENVELOPES_PER_CALL)]


# -- sticker sets (version 2; pigeon.protocol.stickers) -----------------------------------------
# Adding a sticker takes an image, too big for a frame: HTTP POST /v1/stickers/<name>.
class CreateStickerSet(Params):
    name: SetName
    title: StickerTitle
    licence: Licence = ""


class RemoveSticker(Params):
    name: SetName
    index: Position


class MoveSticker(Params):
    """Move the sticker at ``index`` to place ``to``; the ones between shift by one."""

    name: SetName
    index: Position
    to: Position


class PublishStickerSet(Params):
    name: SetName


class SearchStickerSets(Params):
    """Published sets whose title or name holds ``query`` (case-insensitive); "" lists the
    newest."""

    query: Query = ""
    limit: SearchLimit = 20


class GetStickerSet(Params):
    name: SetName


class InstallStickerSet(Params):
    name: SetName


class UninstallStickerSet(Params):
    name: SetName


class ListInstalled(Params):
    pass


class FindStickers(Params):
    """Stickers tagged with ``emoji`` in the caller's installed sets (newest installed
    first)."""

    emoji: Emoji
    limit: SearchLimit = 20


class SendSticker(Params):
    chat_id: ID
    random_id: RandomId
    name: SetName
    index: Position
    reply_to: ID | None = None


Work = Literal["interactive", "bulk"]


class Method(NamedTuple):
    """One method and every per-method fact that the server, the shield and the SDK act on."""

    params: type[Params]
    result: Any
    auth: bool = True  # False: may be called before login
    # Which queue the shield schedules it in once logged in: "bulk" for listings and catch-up
    # that may wait behind the interactive calls a person is looking at.
    work: Work = "interactive"
    paged: bool = False     # its rate cost grows with its page size (Shield.call_cost)
    slotless: bool = False  # cheaper than queueing it: served without a slot (still rate-limited)
    # Unauthenticated and costly to the operator (an SMS, a code check, a session row): it
    # needs proof of work under pressure.
    expensive: bool = False
    # The SDK may resend it after a lost connection; False for calls that must not run twice
    # behind the user's back (a second code SMS, a second group).
    retried: bool = True
    # It sends something to other people (a message, envelopes for their devices): it is
    # counted in the per-account send rate as well as the call rate.
    sends: bool = False


METHODS: dict[str, Method] = {
    "auth.challenge": Method(GetChallenge, PowChallenge, auth=False, slotless=True),
    "auth.send_code": Method(SendCode, SentCode, auth=False, expensive=True,
                             retried=False),
    "auth.sign_in": Method(SignIn, Authorization, auth=False, expensive=True,
                           retried=False),
    "auth.log_out": Method(LogOut, Ok),
    "account.get_me": Method(GetMe, Me),
    "account.update_profile": Method(UpdateProfile, User),
    "account.set_username": Method(SetUsername, User),
    "account.set_privacy": Method(SetPrivacy, Me),
    "users.resolve_username": Method(ResolveUsername, User),
    "users.resolve_phone": Method(ResolvePhone, User),
    "users.get": Method(GetUsers, list[User], work="bulk"),
    "sessions.list": Method(ListSessions, list[SessionInfo], work="bulk"),
    "sessions.terminate": Method(TerminateSession, Ok),
    "sessions.terminate_others": Method(TerminateOtherSessions, Affected),
    "chats.open_private": Method(OpenPrivate, Chat),
    "chats.create_group": Method(CreateGroup, Chat, retried=False),
    "chats.add_members": Method(AddMembers, Chat),
    "chats.remove_member": Method(RemoveMember, Affected),
    "chats.leave": Method(LeaveChat, Affected),
    "chats.set_role": Method(SetRole, Affected),
    "chats.set_title": Method(SetTitle, Chat),
    "chats.list": Method(ListChats, list[Dialog], work="bulk", paged=True),
    "chats.get": Method(GetChat, Chat),
    "chats.members": Method(ListMembers, list[Member], work="bulk", paged=True),
    "chats.mute": Method(MuteChat, Chat),
    "chats.pin": Method(PinMessage, Chat),
    "chats.invitations": Method(ListInvitations, list[Invitation]),
    "chats.accept_invite": Method(AcceptInvite, Chat),
    "chats.decline_invite": Method(DeclineInvite, Ok),
    "messages.send": Method(SendMessage, SentMessage, sends=True),
    "messages.forward": Method(ForwardMessage, SentMessage, sends=True),
    "messages.edit": Method(EditMessageText, Message),
    "messages.delete": Method(DeleteMessages, Affected),
    "messages.history": Method(History, list[Message], work="bulk"),
    "messages.read": Method(ReadHistory, ReadResult),
    "messages.typing": Method(SetTyping, Ok),
    "users.block": Method(Block, Ok),
    "users.unblock": Method(Unblock, Ok),
    "users.blocked": Method(ListBlocked, list[User], work="bulk", paged=True),
    "messages.report": Method(ReportMessage, Ok),
    "contacts.add": Method(AddContact, Contact),
    "contacts.remove": Method(RemoveContact, Ok),
    "contacts.list": Method(ListContacts, list[Contact], work="bulk", paged=True),
    "requests.list": Method(ListRequests, list[MessageRequest], work="bulk", paged=True),
    "requests.accept": Method(AcceptRequest, Chat),
    "requests.decline": Method(DeclineRequest, Ok),
    "updates.get_state": Method(GetState, State),
    "updates.get_difference": Method(GetDifference, Difference, work="bulk"),
    "updates.get_stream_difference": Method(GetStreamDifference, StreamDifference,
                                            work="bulk"),
    "updates.ack_stream": Method(AckStream, Affected),
    "keys.upload": Method(UploadKeys, KeyCounts),
    "keys.query": Method(QueryKeys, list[DeviceKeys], work="bulk"),
    "keys.claim": Method(ClaimKeys, list[ClaimedKey]),
    # Not resent behind the caller's back: a second copy would reach each device twice.
    "envelopes.send": Method(SendEnvelopes, Affected, retried=False, sends=True),
    "stickers.create_set": Method(CreateStickerSet, StickerSet, retried=False),
    "stickers.remove": Method(RemoveSticker, StickerSet, retried=False),
    "stickers.move": Method(MoveSticker, StickerSet, retried=False),
    "stickers.publish": Method(PublishStickerSet, StickerSet),
    "stickers.search": Method(SearchStickerSets, list[StickerSetInfo], work="bulk",
                              paged=True),
    "stickers.get_set": Method(GetStickerSet, StickerSet, work="bulk"),
    "stickers.install": Method(InstallStickerSet, Installed),
    "stickers.uninstall": Method(UninstallStickerSet, Installed),
    "stickers.installed": Method(ListInstalled, Installed),
    "stickers.by_emoji": Method(FindStickers, list[FoundSticker], work="bulk", paged=True),
    "messages.send_sticker": Method(SendSticker, SentMessage, sends=True),
}

METHOD_OF: dict[type[Params], str] = {m.params: name for name, m in METHODS.items()}

# Views of the facts above, for the hot paths that test membership.
BULK_METHODS = frozenset(name for name, m in METHODS.items() if m.work == "bulk")
PAGED_METHODS = frozenset(name for name, m in METHODS.items() if m.paged)
SLOTLESS_METHODS = frozenset(name for name, m in METHODS.items() if m.slotless)
EXPENSIVE_METHODS = frozenset(name for name, m in METHODS.items() if m.expensive)
SENDING_METHODS = frozenset(name for name, m in METHODS.items() if m.sends)
NOT_RETRIED_METHODS = frozenset(name for name, m in METHODS.items() if not m.retried)
