"""The SQLite backend of the Store: the embedded default, zero set-up.

Each operation is a plain synchronous function of a connection: ``_tx_*`` functions run on
the writer thread inside a group-committed transaction (:mod:`.sqlite_engine`), ``_q_*``
functions on a reader thread. Their SQL lives in one module per concern (:mod:`.sqlite_accounts`,
:mod:`.sqlite_people`, :mod:`.sqlite_groups`, :mod:`.sqlite_messages`, :mod:`.sqlite_dialogs`,
:mod:`.sqlite_log`), so that each operation reads top to bottom; the rules they apply are in
:mod:`pigeon.domain`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pigeon.domain.groups import GroupPolicy
from pigeon.domain.keys import Held
from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope, IdentityKeys, SignedKey
from pigeon.protocol.sizes import PAGE_BYTES
from pigeon.protocol.stickers import FoundSticker, Installed, StickerSet, StickerSetInfo
from pigeon.domain.media import UploadLimits
from pigeon.protocol.media import Media
from pigeon.protocol.types import Chat, Dialog, FwdFrom, Message, MessageSticker, Role, State
from pigeon.protocol.updates import Difference

from .base import (
    DIALOG_PAGE_BYTES, ContactRecord, FileRecord, InvitationRecord, LoginCode, MemberRecord,
    NewSticker, Push, ReportRecord, RequestRecord, SessionRecord, Store, StoreStats, StreamPage,
    UploadRecord, UserRecord,
)
from .sqlite_media import (
    _q_expired_uploads, _q_readable_file, _q_upload, _tx_collect_files, _tx_create_upload,
    _tx_delete_uploads, _tx_delete_user_media, _tx_finish_upload,
)
from .sqlite_engine import SqliteEngine
from .sqlite_accounts import (
    _q_live_sessions, _q_session_addresses, _q_session_by_token, _q_sessions, _q_user_where,
    _q_users,
    _tx_consume_code, _tx_create_session, _tx_create_user, _tx_delete_sessions, _tx_exec,
    _tx_save_code, _tx_take_attempt, _tx_update_user,
)
from .sqlite_people import (
    _q_invitations, _q_visible_users, _q_who_can_add, _tx_accept_invitation,
    _tx_decline_invitation, _tx_remember_discovery, _tx_set_who_can_add,
)
from .sqlite_admin import (
    _q_disabled, _q_find_users, _q_reports, _tx_delete_user, _tx_set_disabled, backup,
)
from .sqlite_chat_settings import _tx_mute_chat, _tx_pin_message
from .sqlite_dialogs import _q_dialogs
from .sqlite_requests import _q_requests, _tx_accept_request, _tx_decline_request
from .sqlite_safety import (
    _q_blocked, _q_contacts, _q_who_can_message, _tx_add_contact, _tx_block,
    _tx_remove_contact, _tx_report, _tx_set_who_can_message, _tx_unblock,
)
from .sqlite_groups import (
    _q_get_chat, _q_member_ids, _q_members, _tx_add_members, _tx_create_group, _tx_open_private,
    _tx_remove_member, _tx_set_role, _tx_set_title,
)
from .sqlite_log import _q_difference, _q_state
from .sqlite_messages import (
    _q_get_message, _q_history, _tx_delete_messages, _tx_edit_message, _tx_read_history,
    _tx_send_message,
)
from .sqlite_keys import (
    _q_held, _q_identity, _q_query, _tx_claim, _tx_send_envelopes, _tx_upload,
)
from .sqlite_stickers import (
    _q_file_public, _q_find, _q_get_set, _q_installed, _q_search, _tx_add,
    _tx_create_set, _tx_install, _tx_move, _tx_publish, _tx_remove,
)
from .sqlite_region_chat import SqliteRegionChat
from .sqlite_region_keys import SqliteRegionKeys
from .sqlite_region_stickers import SqliteRegionStickers
from .sqlite_regions import SqliteRegions
from .sqlite_service import _q_service_user_id, _tx_send_service_message
from .sqlite_streams import (
    _q_chat_stream, _q_raw_page, _tx_ack, _tx_append_stream, _tx_append_to_devices,
    _tx_purge_devices,
)

T = TypeVar("T")


class SqlEngine(Protocol):
    """What the operations below need of an engine: group-committed writes, snapshot reads.
    :class:`.sqlite_engine.SqliteEngine` is one; :class:`.postgres_engine.PostgresEngine`,
    which runs the same functions on PostgreSQL through :mod:`.postgres_dialect`, the other."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]: ...
    async def read(self, fn: Callable[..., T], *args: Any) -> T: ...


class SqliteStore(SqliteRegionChat, SqliteRegionStickers, SqliteRegionKeys, SqliteRegions,
                  Store):
    engine: SqlEngine

    def __init__(self, path: Path | str, max_batch: int = 512) -> None:
        self.path = Path(path)
        self.sqlite = SqliteEngine(self.path, max_batch=max_batch)
        self.engine = self.sqlite

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    def stats(self) -> StoreStats:
        s = self.sqlite.stats
        return StoreStats(commits=s.batches, writes=s.jobs, commit_seconds=s.commit_seconds,
                          last_batch=s.last_batch)

    # -- login codes ------------------------------------------------------------------------
    async def save_login_code(self, code: LoginCode) -> None:
        await self.engine.write(_tx_save_code, code)

    async def take_code_attempt(self, code_id: str, now: float,
                                max_attempts: int) -> LoginCode | None:
        return await self.engine.write(_tx_take_attempt, code_id, now, max_attempts)

    async def delete_login_code(self, code_id: str) -> None:
        await self.engine.write(_tx_exec, "DELETE FROM login_codes WHERE id = ?", (code_id,))

    async def consume_login_code(self, code_id: str) -> bool:
        return await self.engine.write(_tx_consume_code, code_id)

    # -- users ------------------------------------------------------------------------------
    async def create_user(self, phone: str, name: str, now: float) -> UserRecord:
        return await self.engine.write(_tx_create_user, phone, name, now)

    async def user_by_phone(self, phone: str) -> UserRecord | None:
        return await self.engine.read(_q_user_where, "phone = ?", phone)

    async def user_by_username(self, username: str) -> UserRecord | None:
        return await self.engine.read(_q_user_where, "username_key = ?", username.lower())

    async def get_users(self, ids: list[int]) -> list[UserRecord]:
        return await self.engine.read(_q_users, ids)

    async def visible_users(self, viewer_id: int, ids: list[int]) -> list[UserRecord]:
        return await self.engine.read(_q_visible_users, viewer_id, ids)

    async def remember_discovery(self, user_id: int, peer_id: int) -> None:
        await self.engine.write(_tx_remember_discovery, user_id, peer_id)

    async def get_who_can_add(self, user_id: int) -> str | None:
        return await self.engine.read(_q_who_can_add, user_id)

    async def set_who_can_add(self, user_id: int, value: str) -> None:
        await self.engine.write(_tx_set_who_can_add, user_id, value)

    async def update_user(self, user_id: int, *, name: str | None = None,
                          username: Any = ...,
                          phone_discoverable: bool | None = None) -> UserRecord:
        return await self.engine.write(_tx_update_user, user_id, name, username, phone_discoverable)

    # -- sessions ---------------------------------------------------------------------------
    async def create_session(self, user_id: int, token_hash: bytes, device: str, address: str,
                             now: float) -> SessionRecord:
        return await self.engine.write(_tx_create_session, user_id, token_hash, device, address,
                                       now)

    async def session_by_token(self, token_hash: bytes) -> SessionRecord | None:
        return await self.engine.read(_q_session_by_token, token_hash)

    async def touch_session(self, session_id: int, address: str, now: float) -> None:
        await self.engine.write(
            _tx_exec, "UPDATE sessions SET last_active = ?, address = ? WHERE id = ?",
            (now, address, session_id),
        )

    async def list_sessions(self, user_id: int) -> list[SessionRecord]:
        return await self.engine.read(_q_sessions, user_id)

    async def session_addresses(self, limit: int) -> list[str]:
        return await self.engine.read(_q_session_addresses, limit)

    async def live_sessions(self, limit: int) -> list[tuple[int, int]]:
        return await self.engine.read(_q_live_sessions, limit)

    async def delete_sessions(self, user_id: int, *, only: int | None = None,
                              keep: int | None = None) -> list[int]:
        return await self.engine.write(_tx_delete_sessions, user_id, only, keep)

    # -- chats ------------------------------------------------------------------------------
    async def open_private(self, user_id: int, peer_id: int, now: float,
                           default_who_can_message: str | None = None) -> Chat:
        return await self.engine.write(_tx_open_private, user_id, peer_id, now,
                                       default_who_can_message)

    async def create_group(self, owner_id: int, title: str, member_ids: list[int], now: float,
                           max_members: int, policy: GroupPolicy | None = None,
                           large: bool = False, secret: bool = False
                           ) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_create_group, owner_id, title, member_ids, now,
                                       max_members, policy, large, secret)

    async def add_members(self, actor_id: int, chat_id: int, user_ids: list[int], now: float,
                          max_members: int, policy: GroupPolicy | None = None,
                          ) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_add_members, actor_id, chat_id, user_ids, now,
                                       max_members, policy)

    async def list_invitations(self, user_id: int, limit: int) -> list[InvitationRecord]:
        return await self.engine.read(_q_invitations, user_id, limit)

    async def accept_invitation(self, user_id: int, chat_id: int, now: float, max_members: int,
                                policy: GroupPolicy | None = None) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_accept_invitation, user_id, chat_id, now,
                                       max_members, policy)

    async def decline_invitation(self, user_id: int, chat_id: int) -> list[Push]:
        return await self.engine.write(_tx_decline_invitation, user_id, chat_id)

    async def remove_member(self, actor_id: int, chat_id: int, user_id: int,
                            now: float) -> tuple[int, list[Push]]:
        return await self.engine.write(_tx_remove_member, actor_id, chat_id, user_id, now)

    async def set_role(self, actor_id: int, chat_id: int, user_id: int, role: Role,
                       now: float) -> tuple[int, list[Push]]:
        return await self.engine.write(_tx_set_role, actor_id, chat_id, user_id, role, now)

    async def set_title(self, actor_id: int, chat_id: int, title: str,
                        now: float) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_set_title, actor_id, chat_id, title, now)

    async def mute_chat(self, user_id: int, chat_id: int, until: float,
                        now: float) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_mute_chat, user_id, chat_id, until, now)

    async def pin_message(self, actor_id: int, chat_id: int, message_id: int | None,
                          now: float) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_pin_message, actor_id, chat_id, message_id, now,
                                       self.crosses_regions)

    async def get_chat(self, user_id: int, chat_id: int) -> Chat:
        return await self.engine.read(_q_get_chat, user_id, chat_id)

    async def list_dialogs(self, user_id: int, limit: int = 100,
                           before: tuple[float, int] | None = None,
                           max_bytes: int = DIALOG_PAGE_BYTES) -> list[Dialog]:
        return await self.engine.read(_q_dialogs, user_id, limit, before, max_bytes)

    async def list_members(self, user_id: int, chat_id: int, offset: int,
                           limit: int) -> list[MemberRecord]:
        return await self.engine.read(_q_members, user_id, chat_id, offset, limit)

    async def member_ids(self, user_id: int, chat_id: int, limit: int) -> list[int]:
        return await self.engine.read(_q_member_ids, user_id, chat_id, limit)

    # -- messages ---------------------------------------------------------------------------
    async def send_message(self, sender_id: int, chat_id: int, random_id: int, text: str,
                           now: float, reply_to: int | None = None,
                           fwd_from: FwdFrom | None = None,
                           sticker: MessageSticker | None = None,
                           media: Media | None = None,
                           ciphertext: bytes | None = None,
                           ) -> tuple[Message, int, list[Push]]:
        return await self.engine.write(
            _tx_send_message, sender_id, chat_id, random_id, text, now, reply_to, fwd_from,
            sticker, media, ciphertext,
        )

    async def get_message(self, user_id: int, chat_id: int, message_id: int) -> Message:
        return await self.engine.read(_q_get_message, user_id, chat_id, message_id)

    async def edit_message(self, user_id: int, chat_id: int, message_id: int, text: str,
                           now: float) -> tuple[Message, list[Push]]:
        return await self.engine.write(_tx_edit_message, user_id, chat_id, message_id, text, now,
                                       self.crosses_regions)

    async def delete_messages(self, user_id: int, chat_id: int, message_ids: list[int],
                              for_everyone: bool) -> tuple[int, int, list[Push]]:
        return await self.engine.write(_tx_delete_messages, user_id, chat_id, message_ids,
                                       for_everyone, self.crosses_regions)

    async def history(self, user_id: int, chat_id: int, before_id: int | None,
                      limit: int, max_bytes: int = PAGE_BYTES) -> list[Message]:
        return await self.engine.read(_q_history, user_id, chat_id, before_id, limit, max_bytes)

    async def read_history(self, user_id: int, chat_id: int,
                           max_id: int) -> tuple[int, int, list[Push]]:
        return await self.engine.write(_tx_read_history, user_id, chat_id, max_id,
                                       self.crosses_regions)

    # -- the service account ----------------------------------------------------------------
    async def service_user_id(self) -> int | None:
        return await self.engine.read(_q_service_user_id)

    async def send_service_message(self, user_id: int, text: str,
                                   now: float) -> tuple[Message, list[Push]]:
        return await self.engine.write(_tx_send_service_message, user_id, text, now)

    # -- updates ----------------------------------------------------------------------------
    async def get_state(self, user_id: int) -> State:
        return await self.engine.read(_q_state, user_id)

    async def get_difference(self, user_id: int, pts: int, limit: int,
                             max_bytes: int = PAGE_BYTES) -> Difference:
        return await self.engine.read(_q_difference, user_id, pts, limit, max_bytes)

    # -- streams ----------------------------------------------------------------------------
    async def chat_stream(self, user_id: int, chat_id: int, after: int, limit: int,
                          max_bytes: int = PAGE_BYTES) -> StreamPage:
        return await self.engine.read(_q_chat_stream, user_id, chat_id, after, limit, max_bytes)

    async def append_stream(self, stream: str, bodies: list[bytes], now: float) -> range:
        return await self.engine.write(_tx_append_stream, stream, bodies, now)

    async def append_to_devices(self, session_ids: list[int], body: bytes,
                                now: float) -> dict[int, int]:
        return await self.engine.write(_tx_append_to_devices, session_ids, body, now)

    async def stream_items(self, stream: str, after: int, limit: int,
                           max_bytes: int = PAGE_BYTES) -> StreamPage:
        return await self.engine.read(_q_raw_page, stream, after, limit, max_bytes)

    async def ack_stream(self, stream: str, seq: int) -> int:
        return await self.engine.write(_tx_ack, stream, seq)

    async def purge_device_inboxes(self, before: float, limit: int) -> int:
        return await self.engine.write(_tx_purge_devices, before, limit)

    # -- safety -----------------------------------------------------------------------------
    async def block(self, user_id: int, peer_id: int, now: float) -> None:
        await self.engine.write(_tx_block, user_id, peer_id, now)

    async def unblock(self, user_id: int, peer_id: int) -> None:
        await self.engine.write(_tx_unblock, user_id, peer_id)

    async def blocked(self, user_id: int, offset: int, limit: int) -> list[UserRecord]:
        return await self.engine.read(_q_blocked, user_id, offset, limit)

    async def report(self, reporter_id: int, chat_id: int, message_id: int, reason: str,
                     now: float) -> None:
        await self.engine.write(_tx_report, reporter_id, chat_id, message_id, reason, now)

    async def add_contact(self, user_id: int, peer_id: int, name: str,
                          now: float) -> ContactRecord:
        return await self.engine.write(_tx_add_contact, user_id, peer_id, name, now)

    async def remove_contact(self, user_id: int, peer_id: int) -> None:
        await self.engine.write(_tx_remove_contact, user_id, peer_id)

    async def contacts(self, user_id: int, offset: int, limit: int) -> list[ContactRecord]:
        return await self.engine.read(_q_contacts, user_id, offset, limit)

    async def message_requests(self, user_id: int, offset: int,
                               limit: int) -> list[RequestRecord]:
        return await self.engine.read(_q_requests, user_id, offset, limit)

    async def accept_request(self, user_id: int, chat_id: int) -> tuple[Chat, list[Push]]:
        return await self.engine.write(_tx_accept_request, user_id, chat_id)

    async def decline_request(self, user_id: int, chat_id: int) -> None:
        await self.engine.write(_tx_decline_request, user_id, chat_id)

    async def get_who_can_message(self, user_id: int) -> str | None:
        return await self.engine.read(_q_who_can_message, user_id)

    async def set_who_can_message(self, user_id: int, value: str) -> None:
        await self.engine.write(_tx_set_who_can_message, user_id, value)

    # -- the operator -----------------------------------------------------------------------
    async def reports(self, after_id: int, limit: int) -> list[ReportRecord]:
        return await self.engine.read(_q_reports, after_id, limit)

    async def find_users(self, query: str, limit: int) -> list[tuple[UserRecord, bool, int]]:
        return await self.engine.read(_q_find_users, query, limit)

    async def set_disabled(self, user_id: int, disabled: bool) -> list[int]:
        return await self.engine.write(_tx_set_disabled, user_id, disabled)

    async def delete_user(self, user_id: int) -> list[int]:
        return await self.engine.write(_tx_delete_user, user_id)

    async def is_disabled(self, user_id: int) -> bool:
        return await self.engine.read(_q_disabled, user_id)

    async def backup(self, target: str) -> None:
        # Its own thread and connection: a long copy holds no reader of the pool.
        await asyncio.to_thread(backup, self.path, Path(target))

    # -- device keys and envelopes ------------------------------------------------------------
    async def device_identity(self, session_id: int) -> tuple[str, str] | None:
        return await self.engine.read(_q_identity, session_id)

    async def upload_keys(self, user_id: int, session_id: int, verified_with: str,
                          identity: IdentityKeys | None, one_time_keys: list[SignedKey],
                          fallback: SignedKey | None) -> Held:
        return await self.engine.write(_tx_upload, user_id, session_id, verified_with,
                                       identity, one_time_keys, fallback)

    async def keys_held(self, session_id: int) -> Held:
        return await self.engine.read(_q_held, session_id)

    async def query_keys(self, user_ids: list[int]) -> list[DeviceKeys]:
        return await self.engine.read(_q_query, user_ids)

    async def claim_keys(self, viewer_id: int, caller_session: int,
                         session_ids: list[int]) -> list[tuple[ClaimedKey, int]]:
        return await self.engine.write(_tx_claim, viewer_id, caller_session, session_ids)

    async def send_envelopes(self, sender_id: int, sender_session: int,
                             envelopes: list[Envelope], now: float) -> list[tuple[int, Any]]:
        return await self.engine.write(_tx_send_envelopes, sender_id, sender_session,
                                       envelopes, now)

    # -- sticker sets (issue 10; pigeon.domain.stickers) ------------------------------------
    async def create_sticker_set(self, author_id: int, name: str, title: str, licence: str,
                                 now: float) -> StickerSet:
        return await self.engine.write(_tx_create_set, author_id, name, title, licence, now)

    async def add_sticker(self, author_id: int, name: str, sticker: NewSticker) -> StickerSet:
        return await self.engine.write(_tx_add, author_id, name, sticker)

    async def remove_sticker(self, author_id: int, name: str, index: int) -> StickerSet:
        return await self.engine.write(_tx_remove, author_id, name, index)

    async def move_sticker(self, author_id: int, name: str, index: int,
                           to: int) -> StickerSet:
        return await self.engine.write(_tx_move, author_id, name, index, to)

    async def publish_sticker_set(self, author_id: int, name: str, now: float) -> StickerSet:
        return await self.engine.write(_tx_publish, author_id, name, now)

    async def search_sticker_sets(self, viewer_id: int, query: str,
                                  limit: int) -> list[StickerSetInfo]:
        return await self.engine.read(_q_search, viewer_id, query, limit)

    async def get_sticker_set(self, viewer_id: int | None, name: str) -> StickerSet:
        return await self.engine.read(_q_get_set, viewer_id, name)

    async def install_sticker_set(self, user_id: int, name: str, install: bool,
                                  now: float) -> tuple[Installed, list[Push]]:
        return await self.engine.write(_tx_install, user_id, name, install, now)

    async def installed_sticker_sets(self, user_id: int) -> Installed:
        return await self.engine.read(_q_installed, user_id)

    async def find_stickers(self, user_id: int, emoji: str,
                            limit: int) -> list[FoundSticker]:
        return await self.engine.read(_q_find, user_id, emoji, limit)

    async def sticker_file_public(self, file_id: str) -> bool:
        return await self.engine.read(_q_file_public, file_id)

    async def ping(self) -> None:
        await self.engine.read(_q_ping)

    # -- media ------------------------------------------------------------------------------
    async def create_upload(self, upload: UploadRecord, limits: UploadLimits) -> None:
        await self.engine.write(_tx_create_upload, upload, limits)

    async def get_upload(self, upload_id: str, user_id: int) -> UploadRecord:
        return await self.engine.read(_q_upload, upload_id, user_id)

    async def finish_upload(self, upload_id: str, files: list[FileRecord],
                            readers: list[int] | None = None) -> None:
        await self.engine.write(_tx_finish_upload, upload_id, files, readers or [])

    async def delete_uploads(self, upload_ids: list[str]) -> None:
        await self.engine.write(_tx_delete_uploads, upload_ids)

    async def expired_uploads(self, before: float, limit: int) -> list[UploadRecord]:
        return await self.engine.read(_q_expired_uploads, before, limit)

    async def readable_file(self, user_id: int, file_id: str) -> FileRecord:
        return await self.engine.read(_q_readable_file, user_id, file_id)

    async def collect_files(self, before: float, limit: int) -> tuple[int, list[str]]:
        return await self.engine.write(_tx_collect_files, before, limit)

    async def delete_user_media(self, user_id: int,
                                limit: int) -> tuple[list[str], list[str], int]:
        return await self.engine.write(_tx_delete_user_media, user_id, limit)

def _q_ping(conn: Any) -> None:
    conn.execute("SELECT 1").fetchone()
