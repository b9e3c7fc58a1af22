"""The Store interface: every durable operation Pigeon performs, as one narrow contract.

Each write method is one atomic transaction that checks what must be checked under the
transaction (membership, roles, uniqueness) and returns the result together with the updates
it produced (:class:`Push`), already numbered with each recipient's next ``pts``. A write
method returns only once its transaction is durable on disk: callers may acknowledge at once.

Backends: ``sqlite`` (embedded default) and, later, ``postgres``. Both run the contract
suite in ``tests/contract`` unchanged. Backend errors are translated here, at the boundary,
into :mod:`pigeon.protocol.errors` (``STORAGE_FAILED`` when the disk or database fails).
"""

from __future__ import annotations

import abc
from typing import Any, NamedTuple

import msgspec

from pigeon.protocol.types import Chat, Dialog, FwdFrom, Message, Role, State
from pigeon.protocol.updates import Difference


# The service account that delivers login codes in the app. Its "phone" is no phone number,
# so nobody can ask for a code to log in as it.
SERVICE_PHONE = "service:pigeon"
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


class MemberRecord(NamedTuple):
    user: UserRecord
    role: Role


class Store(abc.ABC):
    """The durable state of one Pigeon deployment."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema, then accept calls."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish every queued write (it is committed and its caller answered), then close."""

    # -- login codes ------------------------------------------------------------------------
    @abc.abstractmethod
    async def save_login_code(self, code: LoginCode) -> None: ...

    @abc.abstractmethod
    async def take_code_attempt(self, code_id: str, now: float, max_attempts: int) -> LoginCode | None:
        """Count one attempt and return the code, or None if missing, expired or used up."""

    @abc.abstractmethod
    async def delete_login_code(self, code_id: str) -> None: ...

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
    async def get_users(self, ids: list[int]) -> list[UserRecord]: ...

    @abc.abstractmethod
    async def update_user(
        self, user_id: int, *, name: str | None = None, username: str | None | Any = ...,
        phone_discoverable: bool | None = None,
    ) -> UserRecord:
        """``username=None`` releases it; ``...`` leaves it. Conflict(USERNAME_TAKEN)."""

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
    async def delete_sessions(
        self, user_id: int, *, only: int | None = None, keep: int | None = None
    ) -> list[int]:
        """Delete one session (``only``) or all but ``keep``; return the ids deleted.
        NotFound(SESSION_NOT_FOUND) if ``only`` is not one of the user's sessions."""

    # -- chats ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def open_private(self, user_id: int, peer_id: int, now: float) -> Chat: ...

    @abc.abstractmethod
    async def create_group(
        self, owner_id: int, title: str, member_ids: list[int], now: float, max_members: int
    ) -> tuple[Chat, list[Push]]: ...

    @abc.abstractmethod
    async def add_members(
        self, actor_id: int, chat_id: int, user_ids: list[int], now: float, max_members: int
    ) -> tuple[Chat, list[Push]]: ...

    @abc.abstractmethod
    async def remove_member(
        self, actor_id: int, chat_id: int, user_id: int, now: float
    ) -> tuple[int, list[Push]]:
        """Remove ``user_id`` (``actor_id == user_id``: leave). Returns the actor's pts."""

    @abc.abstractmethod
    async def set_role(
        self, actor_id: int, chat_id: int, user_id: int, role: Role, now: float
    ) -> tuple[int, list[Push]]: ...

    @abc.abstractmethod
    async def set_title(
        self, actor_id: int, chat_id: int, title: str, now: float
    ) -> tuple[Chat, list[Push]]: ...

    @abc.abstractmethod
    async def get_chat(self, user_id: int, chat_id: int) -> Chat:
        """NotFound(CHAT_NOT_FOUND) or Forbidden(NOT_A_MEMBER)."""

    @abc.abstractmethod
    async def list_dialogs(self, user_id: int) -> list[Dialog]: ...

    @abc.abstractmethod
    async def list_members(
        self, user_id: int, chat_id: int, offset: int, limit: int
    ) -> list[MemberRecord]: ...

    @abc.abstractmethod
    async def member_ids(self, user_id: int, chat_id: int, limit: int) -> list[int]:
        """Other members of a chat the user is in (for ephemeral notices)."""

    # -- messages ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def send_message(
        self, sender_id: int, chat_id: int, random_id: int, text: str, now: float,
        reply_to: int | None = None, fwd_from: FwdFrom | None = None,
    ) -> tuple[Message, int, list[Push]]:
        """Append a message; returns it, the sender's pts and the pushes. A repeated
        ``random_id`` from the same sender returns the original message and pts, no push."""

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
        self, user_id: int, chat_id: int, before_id: int | None, limit: int
    ) -> list[Message]:
        """Newest first."""

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
    async def get_state(self, user_id: int) -> State: ...

    @abc.abstractmethod
    async def get_difference(self, user_id: int, pts: int, limit: int) -> Difference: ...
