"""The operator's rules (issue 11): finding an account, what deleting one removes, which
accounts may not be touched. Pure; the store applies them (store/sqlite_admin.py)."""

from __future__ import annotations

from typing import NamedTuple

from pigeon.protocol.errors import Forbidden, InvalidArgument, NotFound, Unauthorized

# The service account that delivers login codes in the app. Its "phone" is no phone number,
# so nobody can ask for a code to log in as it.
SERVICE_PHONE = "service:pigeon"
DELETED_NAME = "Deleted account"
MAX_QUERY_CHARS = 64

# What deleting an account removes besides its profile and sessions: (table, columns that
# name the account). Its messages stay: they are the other members' history too.
PERSONAL_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("contacts", ("user_id", "peer_id")),
    ("blocks", ("user_id", "peer_id")),
    ("discovered", ("user_id", "peer_id")),
    ("wrote_to", ("user_id", "peer_id")),
    ("invitations", ("user_id", "inviter_id")),
    ("message_requests", ("user_id", "peer_id")),
)


class SearchKey(NamedTuple):
    user_id: int      # 0 when the query is no id
    phone: str
    username: str
    escaped: str      # for LIKE ... ESCAPE '\', lower case


def search_key(query: str) -> SearchKey:
    """``user:ID`` or a bare id, ``+NUMBER``, ``@username``, or part of a name or number."""
    text = query.strip()
    if not text or len(text) > MAX_QUERY_CHARS or not text.isprintable():
        raise InvalidArgument(f"a search is 1 to {MAX_QUERY_CHARS} printable characters",
                              code="INVALID_ARGUMENT")
    raw_id = text.removeprefix("user:")
    user_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19 else 0
    lowered = text.lower().removeprefix("@")
    escaped = lowered.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return SearchKey(user_id, text, lowered, escaped)


def check_target(user_id: int, phone: str | None) -> None:
    """An account the operator may disable or delete: one that exists, not the service."""
    if phone is None:
        raise NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")
    if phone == SERVICE_PHONE:
        raise Forbidden("the service account delivers login codes; it cannot be disabled "
                        "or deleted", code="FORBIDDEN")


def check_enabled(disabled: bool) -> None:
    """A disabled account gets no new session."""
    if disabled:
        raise Unauthorized("this account was disabled by the server's operator",
                           code="ACCOUNT_DISABLED")


def deleted_phone(user_id: int) -> str:
    """What stays in place of a deleted account's number: unique, and no number, so that
    nobody can log in as it and the number is free for a new account."""
    return f"deleted:{user_id}"
