"""The Store interface: every durable operation Pigeon performs, as one narrow contract.

Each write method is one atomic transaction that checks what must be checked under the
transaction (membership, roles, uniqueness) and returns the result together with the updates
it produced (:class:`Push`), already numbered with each recipient's next ``pts``. The checks
and decisions are the rules of :mod:`pigeon.domain`, which a backend calls inside the
transaction with the rows it read; a backend itself only reads, writes and numbers. A write
method returns only once its transaction is durable on disk: callers may acknowledge at once.

Backends: ``sqlite`` (embedded default) and ``postgres``. Both run the contract
suite in ``tests/contract`` unchanged. Backend errors are translated here, at the boundary,
into :mod:`pigeon.protocol.errors` (``STORAGE_FAILED`` when the disk or database fails).
"""

from __future__ import annotations

import abc
from typing import Any

from pigeon.domain.groups import GroupPolicy
from pigeon.domain.keys import Held
from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope, IdentityKeys, SignedKey
from pigeon.protocol.updates import Envelope as EnvelopeItem
from pigeon.protocol.sizes import PAGE_BYTES
from pigeon.domain.media import UploadLimits
from pigeon.protocol.media import Media
from pigeon.protocol.stickers import FoundSticker, Installed, StickerSet, StickerSetInfo
from pigeon.protocol.types import Chat, Dialog, FwdFrom, Message, MessageSticker, Role, State
from pigeon.protocol.updates import Difference
from .region_api import RegionApi

# The records the interface takes and returns; importable from here, as they always were.
from .records import (
    SERVICE_NAME as SERVICE_NAME,
    ChatPush as ChatPush,
    ContactRecord as ContactRecord,
    FileRecord as FileRecord,
    InvitationRecord as InvitationRecord,
    LoginCode as LoginCode,
    MemberRecord as MemberRecord,
    NewSticker as NewSticker,
    Push as Push,
    ReportRecord as ReportRecord,
    RequestRecord as RequestRecord,
    SessionRecord as SessionRecord,
    StoreStats as StoreStats,
    StreamPage as StreamPage,
    UploadRecord as UploadRecord,
    UserRecord as UserRecord,
)


DIALOG_PAGE_BYTES = 128 * 1024
"""A chats.list page stops growing past this many encoded bytes (the SDK refuses frames over
256 KiB): a hundred dialogs whose last messages are 4,096 emoji would be 1.6 MB."""


class Store(RegionApi, abc.ABC):
    """The durable state of one Pigeon deployment."""

    async def ping(self) -> None:
        """Raise STORAGE_FAILED unless the database answers now (readiness: /healthz)."""
        raise NotImplementedError

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema, then accept calls."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every queued write (it is committed and its caller answered), then close."""

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Counters for /metrics, read at scrape time: cheap, no I/O."""

    # -- login codes ------------------------------------------------------------------------
    @abc.abstractmethod
    async def save_login_code(self, code: LoginCode) -> None: ...

    @abc.abstractmethod
    async def take_code_attempt(self, code_id: str, now: float,
                                max_attempts: int) -> LoginCode | None:
        """Count one attempt and return the code, or None if missing, expired or used up."""

    @abc.abstractmethod
    async def delete_login_code(self, code_id: str) -> None: ...

    @abc.abstractmethod
    async def consume_login_code(self, code_id: str) -> bool:
        """Delete the code if it still exists; True for the one caller that deleted it.

        The check and the delete are one atomic step: of two sign-ins racing with the same
        correct code, exactly one gets True (issue 7, finding 8)."""

    # -- users ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, phone: str, name: str, now: float) -> UserRecord:
        """Conflict(PHONE_TAKEN is impossible by construction): returns the existing user
        if the phone is already registered."""

    @abc.abstractmethod
    async def user_by_phone(self, phone: str) -> UserRecord | None: ...

    @abc.abstractmethod
    async def user_by_username(self, username: str) -> UserRecord | None:
        """Case-insensitive."""

    @abc.abstractmethod
    async def get_users(self, ids: list[int]) -> list[UserRecord]:
        """Any users, for the server's own use (never handed to another user as is)."""

    @abc.abstractmethod
    async def visible_users(self, viewer_id: int, ids: list[int]) -> list[UserRecord]:
        """The users among ``ids`` that ``viewer_id`` may see: themself, anyone they share a
        group with, found by username or phone, who wrote to them in a private chat, or who
        invited them to a group. The others are left out (users.get, issue 7 finding 18)."""

    @abc.abstractmethod
    async def remember_discovery(self, user_id: int, peer_id: int) -> None:
        """``user_id`` found ``peer_id`` by username or phone: from now on they may see them."""

    @abc.abstractmethod
    async def update_user(
        self, user_id: int, *, name: str | None = None, username: str | None | Any = ...,
        phone_discoverable: bool | None = None,
    ) -> UserRecord:
        """``username=None`` releases it; ``...`` leaves it. Conflict(USERNAME_TAKEN)."""

    @abc.abstractmethod
    async def get_who_can_add(self, user_id: int) -> str | None:
        """The user's group-adding privacy, None if they never chose (the server's default)."""

    @abc.abstractmethod
    async def set_who_can_add(self, user_id: int, value: str) -> None: ...

    # -- sessions ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_session(
        self, user_id: int, token_hash: bytes, device: str, address: str, now: float
    ) -> SessionRecord: ...

    @abc.abstractmethod
    async def session_by_token(self, token_hash: bytes) -> SessionRecord | None: ...

    @abc.abstractmethod
    async def touch_session(self, session_id: int, address: str, now: float) -> None: ...

    @abc.abstractmethod
    async def list_sessions(self, user_id: int) -> list[SessionRecord]: ...

    @abc.abstractmethod
    async def session_addresses(self, limit: int) -> list[str]:
        """The addresses that sessions were most recently active from, newest first: the
        shield lets them in first when it must ration new connections."""

    @abc.abstractmethod
    async def live_sessions(self, limit: int) -> list[tuple[int, int]]:
        """(session id, user id) of up to ``limit`` sessions, the most recently active
        first: the server checks resumption tickets against them without reading here."""

    @abc.abstractmethod
    async def delete_sessions(
        self, user_id: int, *, only: int | None = None, keep: int | None = None
    ) -> list[int]:
        """Delete one session (``only``) or all but ``keep``; return the ids deleted.
        NotFound(SESSION_NOT_FOUND) if ``only`` is not one of the user's sessions."""

    # -- chats ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def open_private(self, user_id: int, peer_id: int, now: float,
                           default_who_can_message: str | None = None) -> Chat:
        """The private chat of the two. With ``default_who_can_message`` (the server's
        setting) a new chat is a message request for the peer, or refused
        (Forbidden(USER_PRIVACY_RESTRICTED)), when the opener is a stranger to them."""

    @abc.abstractmethod
    async def create_group(
        self, owner_id: int, title: str, member_ids: list[int], now: float, max_members: int,
        policy: GroupPolicy | None = None, large: bool = False, secret: bool = False,
    ) -> tuple[Chat, list[Push]]:
        """``secret``: an end-to-end encrypted group (:mod:`pigeon.domain.encryption`).
        ``large``: a very large group (kind ``supergroup``) whose updates are written once,
        on its own stream; it holds ``policy.max_supergroup_members`` (``max_members``
        without a policy). With a ``policy``, each person is added, invited or refused by their
        privacy setting (Forbidden(USER_PRIVACY_RESTRICTED), NotFound(USER_NOT_FOUND) for people the
        owner cannot see) and quotas hold (Conflict(QUOTA_EXCEEDED)); ``chat.invited`` lists
        who was invited. Without one, everyone named is added (the store's own tests)."""

    @abc.abstractmethod
    async def add_members(
        self, actor_id: int, chat_id: int, user_ids: list[int], now: float, max_members: int,
        policy: GroupPolicy | None = None,
    ) -> tuple[Chat, list[Push]]:
        """As :meth:`create_group` for the people named."""

    @abc.abstractmethod
    async def list_invitations(self, user_id: int, limit: int) -> list[InvitationRecord]:
        """The user's pending invitations, newest first."""

    @abc.abstractmethod
    async def accept_invitation(
        self, user_id: int, chat_id: int, now: float, max_members: int,
        policy: GroupPolicy | None = None,
    ) -> tuple[Chat, list[Push]]:
        """Join the group. NotFound(INVITATION_NOT_FOUND), Conflict(GROUP_FULL, QUOTA_EXCEEDED)."""

    @abc.abstractmethod
    async def decline_invitation(self, user_id: int, chat_id: int) -> list[Push]:
        """Forget the invitation. NotFound(INVITATION_NOT_FOUND)."""

    @abc.abstractmethod
    async def remove_member(
        self, actor_id: int, chat_id: int, user_id: int, now: float
    ) -> tuple[int, list[Push]]:
        """Remove ``user_id`` (``actor_id == user_id``: leave). Returns the actor's pts.
        Records what the departing member could see, so that the update log serves them no
        edit made later (:mod:`pigeon.domain.visibility`)."""

    @abc.abstractmethod
    async def set_role(
        self, actor_id: int, chat_id: int, user_id: int, role: Role, now: float
    ) -> tuple[int, list[Push]]: ...

    @abc.abstractmethod
    async def set_title(
        self, actor_id: int, chat_id: int, title: str, now: float
    ) -> tuple[Chat, list[Push]]: ...

    @abc.abstractmethod
    async def mute_chat(
        self, user_id: int, chat_id: int, until: float, now: float
    ) -> tuple[Chat, list[Push]]:
        """The member's own mute (domain.chat_settings), told to their devices only."""

    @abc.abstractmethod
    async def pin_message(
        self, actor_id: int, chat_id: int, message_id: int | None, now: float
    ) -> tuple[Chat, list[Push]]:
        """The chat's pinned message (None: unpin), told to every member."""

    @abc.abstractmethod
    async def get_chat(self, user_id: int, chat_id: int) -> Chat:
        """Forbidden(NOT_A_MEMBER), alike for a chat that does not exist and one the user is
        not in, so that chat ids cannot be probed (issue 7, finding 18)."""

    @abc.abstractmethod
    async def list_dialogs(
        self, user_id: int, limit: int = 100, before: tuple[float, int] | None = None,
        max_bytes: int = DIALOG_PAGE_BYTES,
    ) -> list[Dialog]:
        """One page of the user's dialogs, by (``date``, chat id) descending, starting after
        ``before``; at most ``limit`` of them and (past the first) ``max_bytes`` encoded."""

    @abc.abstractmethod
    async def list_members(
        self, user_id: int, chat_id: int, offset: int, limit: int
    ) -> list[MemberRecord]: ...

    @abc.abstractmethod
    async def member_ids(self, user_id: int, chat_id: int, limit: int) -> list[int]:
        """Other members of a chat the user is in (for ephemeral notices), but not those who
        blocked the user, nor a message request's recipient before they accept it."""

    # -- messages ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def send_message(
        self, sender_id: int, chat_id: int, random_id: int, text: str, now: float,
        reply_to: int | None = None, fwd_from: FwdFrom | None = None,
        sticker: MessageSticker | None = None,
        media: Media | None = None,
        ciphertext: bytes | None = None,
    ) -> tuple[Message, int, list[Push]]:
        """Append a message (``sticker``: a sticker message, whose text is ""; in an end-to-end
        encrypted group: ``ciphertext`` and no ``text``, :mod:`pigeon.domain.encryption`);
        returns it, the sender's pts and the pushes. A repeated ``random_id`` from the same
        sender returns the original message and pts, no push. ``media``: the message refers to
        that file (and its thumbnail) from now on."""

    @abc.abstractmethod
    async def get_message(self, user_id: int, chat_id: int, message_id: int) -> Message: ...

    @abc.abstractmethod
    async def edit_message(
        self, user_id: int, chat_id: int, message_id: int, text: str, now: float
    ) -> tuple[Message, list[Push]]: ...

    @abc.abstractmethod
    async def delete_messages(
        self, user_id: int, chat_id: int, message_ids: list[int], for_everyone: bool
    ) -> tuple[int, int, list[Push]]:
        """Returns (caller's pts, messages affected, pushes)."""

    @abc.abstractmethod
    async def history(
        self, user_id: int, chat_id: int, before_id: int | None, limit: int,
        max_bytes: int = PAGE_BYTES,
    ) -> list[Message]:
        """Newest first: at most ``limit`` messages, fewer (but at least one, if any remain)
        when more would encode to over ``max_bytes``; an empty page is the end."""

    @abc.abstractmethod
    async def read_history(
        self, user_id: int, chat_id: int, max_id: int
    ) -> tuple[int, int, list[Push]]:
        """Returns (caller's pts, unread count left, pushes)."""

    # -- the service account ----------------------------------------------------------------
    @abc.abstractmethod
    async def service_user_id(self) -> int | None:
        """The service account's id, or None until its first message."""

    @abc.abstractmethod
    async def send_service_message(
        self, user_id: int, text: str, now: float
    ) -> tuple[Message, list[Push]]:
        """A message from the service account to ``user_id`` in their chat with it (created,
        and the account too, on first use). Nobody else may write in that chat
        (Forbidden) nor open a chat with the service account."""

    # -- updates ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_state(self, user_id: int) -> State:
        """The user's pts, and in ``streams`` the head of each large chat's stream they are in."""

    @abc.abstractmethod
    async def get_difference(
        self, user_id: int, pts: int, limit: int, max_bytes: int = PAGE_BYTES
    ) -> Difference:
        """The updates after ``pts``, in order: at most ``limit``, fewer (but at least one)
        when more would encode to over ``max_bytes`` (``more`` is then true). A message
        update shows what its recipient is entitled to (:mod:`pigeon.domain.visibility`)."""

    # -- streams (docs/protocol.md, "Streams") -----------------------------------------------
    @abc.abstractmethod
    async def chat_stream(
        self, user_id: int, chat_id: int, after: int, limit: int, max_bytes: int = PAGE_BYTES
    ) -> StreamPage:
        """The items of a large chat's stream after ``after`` (never before the member joined),
        as updates the member may see. NotFound(STREAM_NOT_FOUND) unless the user is a member
        of such a chat."""

    @abc.abstractmethod
    async def append_stream(self, stream: str, bodies: list[bytes], now: float) -> range:
        """Append encoded items to a stream in one transaction; returns their positions,
        gap-free and increasing however many writers append at once."""

    @abc.abstractmethod
    async def append_to_devices(
        self, session_ids: list[int], body: bytes, now: float
    ) -> dict[int, int]:
        """One item (an encoded envelope) in each of these devices' inboxes, in one
        transaction; returns each existing session's position for it (ended sessions are left
        out). InvalidArgument past the bounds of :mod:`pigeon.domain.streams`."""

    @abc.abstractmethod
    async def stream_items(
        self, stream: str, after: int, limit: int, max_bytes: int = PAGE_BYTES
    ) -> StreamPage:
        """Items of a stream after ``after`` as their stored bytes (``msgspec.Raw``)."""

    @abc.abstractmethod
    async def ack_stream(self, stream: str, seq: int) -> int:
        """Delete the items up to ``seq`` (the reader has them); returns how many."""

    @abc.abstractmethod
    async def purge_device_inboxes(self, before: float, limit: int) -> int:
        """Delete at most ``limit`` device inbox items created before ``before``."""

    # -- safety: blocks, reports, contacts, message requests (issue 11) ----------------------
    @abc.abstractmethod
    async def block(self, user_id: int, peer_id: int, now: float) -> None:
        """From now on ``peer_id``'s private messages and group additions do not reach
        ``user_id``, and ``peer_id`` is not told (pigeon.domain.blocks)."""

    @abc.abstractmethod
    async def unblock(self, user_id: int, peer_id: int) -> None: ...

    @abc.abstractmethod
    async def blocked(self, user_id: int, offset: int, limit: int) -> list[UserRecord]: ...

    @abc.abstractmethod
    async def report(self, reporter_id: int, chat_id: int, message_id: int, reason: str,
                     now: float) -> None:
        """Record a report of a message the reporter can see (a copy of its text)."""

    @abc.abstractmethod
    async def add_contact(self, user_id: int, peer_id: int, name: str,
                          now: float) -> ContactRecord:
        """Add (or rename) a contact the user may see; USER_NOT_FOUND for the others."""

    @abc.abstractmethod
    async def remove_contact(self, user_id: int, peer_id: int) -> None: ...

    @abc.abstractmethod
    async def contacts(self, user_id: int, offset: int, limit: int) -> list[ContactRecord]: ...

    @abc.abstractmethod
    async def message_requests(self, user_id: int, offset: int,
                               limit: int) -> list[RequestRecord]: ...

    @abc.abstractmethod
    async def accept_request(self, user_id: int, chat_id: int) -> tuple[Chat, list[Push]]:
        """The chat joins the user's list; pushes its latest messages to their devices."""

    @abc.abstractmethod
    async def decline_request(self, user_id: int, chat_id: int) -> None: ...

    @abc.abstractmethod
    async def get_who_can_message(self, user_id: int) -> str | None: ...

    @abc.abstractmethod
    async def set_who_can_message(self, user_id: int, value: str) -> None: ...

    # -- the operator (reached from the operator listener only) ------------------------------
    @abc.abstractmethod
    async def reports(self, after_id: int, limit: int) -> list[ReportRecord]: ...

    @abc.abstractmethod
    async def find_users(self, query: str, limit: int) -> list[tuple[UserRecord, bool, int]]:
        """Accounts matching by id, phone, @username or name: (user, disabled, sessions)."""

    @abc.abstractmethod
    async def set_disabled(self, user_id: int, disabled: bool) -> list[int]:
        """Returns the ids of the sessions that disabling ended."""

    @abc.abstractmethod
    async def delete_user(self, user_id: int) -> list[int]:
        """Returns the ids of the sessions that ended."""

    @abc.abstractmethod
    async def is_disabled(self, user_id: int) -> bool: ...

    @abc.abstractmethod
    async def backup(self, target: str) -> None:
        """A consistent copy of the whole database into the new file ``target``, taken while
        the store goes on serving."""

    # -- device keys and envelopes (issue 9; pigeon.domain.keys) --------------------------------
    @abc.abstractmethod
    async def device_identity(self, session_id: int) -> tuple[str, str] | None:
        """The identity keys (curve25519, ed25519) the device of ``session_id`` published."""

    @abc.abstractmethod
    async def upload_keys(
        self, user_id: int, session_id: int, verified_with: str,
        identity: IdentityKeys | None, one_time_keys: list[SignedKey],
        fallback: SignedKey | None,
    ) -> Held:
        """Store a device's public keys, whose signatures the caller checked with the Ed25519
        key ``verified_with``; returns what is held now. Conflict(IDENTITY_KEYS_CHANGED) for
        other identity keys than the device's, InvalidArgument past the bounds of
        :mod:`pigeon.domain.keys`, Unauthorized(SESSION_INVALID) once the session ended."""

    @abc.abstractmethod
    async def keys_held(self, session_id: int) -> Held: ...

    @abc.abstractmethod
    async def query_keys(self, user_ids: list[int]) -> list[DeviceKeys]:
        """The devices of these users that published identity keys (the caller filters the
        users by who may see whom)."""

    @abc.abstractmethod
    async def claim_keys(
        self, viewer_id: int, caller_session: int, session_ids: list[int]
    ) -> list[tuple[ClaimedKey, int]]:
        """A key of each of these devices whose owner ``viewer_id`` may see
        (:func:`pigeon.domain.people.may_see`), the caller's own device aside: a one-time key
        handed out to this claim alone, else the fallback key; each with the one-time keys
        its device has left. Other devices are left out."""

    @abc.abstractmethod
    async def send_envelopes(
        self, sender_id: int, sender_session: int, envelopes: list[Envelope], now: float
    ) -> list[tuple[int, EnvelopeItem]]:
        """Each envelope into its device's inbox, in one transaction; NotFound
        (DEVICE_NOT_FOUND) if one is not a device the sender may reach
        (:func:`pigeon.domain.keys.may_send_envelope`). Returns (device, item) pairs."""

    # -- sticker sets (issue 10; pigeon.domain.stickers) ------------------------------------
    @abc.abstractmethod
    async def create_sticker_set(self, author_id: int, name: str, title: str, licence: str,
                                 now: float) -> StickerSet:
        """A new, empty, unpublished set; Conflict(STICKER_SET_NAME_TAKEN) for a name in
        use, InvalidArgument(TOO_MANY_STICKER_SETS) past the author's bound."""

    @abc.abstractmethod
    async def add_sticker(self, author_id: int, name: str, sticker: NewSticker) -> StickerSet:
        """Append a normalised sticker (its file already stored) to the author's set."""

    @abc.abstractmethod
    async def remove_sticker(self, author_id: int, name: str, index: int) -> StickerSet: ...

    @abc.abstractmethod
    async def move_sticker(self, author_id: int, name: str, index: int,
                           to: int) -> StickerSet: ...

    @abc.abstractmethod
    async def publish_sticker_set(self, author_id: int, name: str, now: float) -> StickerSet:
        """Publish (a second time: no change)."""

    @abc.abstractmethod
    async def search_sticker_sets(self, viewer_id: int, query: str,
                                  limit: int) -> list[StickerSetInfo]:
        """Published sets whose name or title holds ``query``, case-insensitive."""

    @abc.abstractmethod
    async def get_sticker_set(self, viewer_id: int | None, name: str) -> StickerSet:
        """A set ``viewer_id`` may see (None: anyone; published sets only)."""

    @abc.abstractmethod
    async def install_sticker_set(self, user_id: int, name: str, install: bool,
                                  now: float) -> tuple[Installed, list[Push]]:
        """Install or uninstall; the pushes tell every device of the user's (one
        ``stickers_installed`` update), none if nothing changed."""

    @abc.abstractmethod
    async def installed_sticker_sets(self, user_id: int) -> Installed: ...

    @abc.abstractmethod
    async def find_stickers(self, user_id: int, emoji: str,
                            limit: int) -> list[FoundSticker]:
        """Stickers tagged ``emoji`` in the user's installed sets, newest installed first."""

    @abc.abstractmethod
    async def sticker_file_public(self, file_id: str) -> bool:
        """Whether some sticker is this file (so anyone may download it)."""

    # -- media (issue 10; domain/media.py holds the rules) -----------------------------------
    @abc.abstractmethod
    async def create_upload(self, upload: UploadRecord, limits: UploadLimits) -> None:
        """Record a new upload, or FILE_TOO_LARGE / TOO_MANY_UPLOADS / QUOTA_EXCEEDED, checked
        in the same transaction as the account's usage is read."""

    @abc.abstractmethod
    async def get_upload(self, upload_id: str, user_id: int) -> UploadRecord:
        """The caller's upload, or UPLOAD_NOT_FOUND (also for someone else's)."""

    @abc.abstractmethod
    async def finish_upload(self, upload_id: str, files: list[FileRecord],
                            readers: list[int] | None = None) -> None:
        """Store the files an upload made (the file, then its thumbnail) and mark it done;
        ``readers`` may read the first (and its thumbnail) besides the members of the chats
        it is sent to."""

    @abc.abstractmethod
    async def delete_uploads(self, upload_ids: list[str]) -> None: ...

    @abc.abstractmethod
    async def expired_uploads(self, before: float, limit: int) -> list[UploadRecord]:
        """Uploads created before ``before`` (completed or not): to be cleaned up."""

    @abc.abstractmethod
    async def readable_file(self, user_id: int, file_id: str) -> FileRecord:
        """The file if ``user_id`` may read it (domain.media.may_read), else FILE_NOT_FOUND."""

    @abc.abstractmethod
    async def delete_user_media(self, user_id: int,
                                limit: int) -> tuple[list[str], list[str], int]:
        """An account was deleted: remove its uploads in progress and up to ``limit`` of its
        files (thumbnails and references to them too; the messages stay, their files then
        read FILE_NOT_FOUND). Returns the upload ids (their parts may go), the digests no
        file or sticker uses any more (their blobs may go), and how many files were
        removed (``limit``: call again)."""

    @abc.abstractmethod
    async def collect_files(self, before: float, limit: int) -> tuple[int, list[str]]:
        """Remove up to ``limit`` files no message refers to, created before ``before``, and
        their thumbnails; returns how many files were looked at (``limit``: call again) and
        the digests no file uses any more (their blobs may go)."""
