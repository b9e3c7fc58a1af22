"""Durable state behind one narrow interface; backends translate their errors at this boundary.

Importing this package loads no backend: the server depends on :class:`Store` only, and the
one place that picks a backend (server/backends.py) imports it. ``SqliteStore`` is still
reachable from here, loaded on first use, for tools and tests that want it by name.
"""

from typing import Any

from pigeon.domain.groups import GroupPolicy

from .base import (
    ChatPush, InvitationRecord, LoginCode, MemberRecord, Push, SessionRecord, Store, StoreStats,
    StreamPage, UserRecord,
)

__all__ = ["ChatPush", "GroupPolicy", "InvitationRecord", "LoginCode", "MemberRecord", "Push",
           "SessionRecord", "SqliteStore", "Store", "StoreStats", "StreamPage", "UserRecord"]


def __getattr__(name: str) -> Any:
    if name == "SqliteStore":
        from .sqlite import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
