"""Durable state behind one narrow interface; backends translate their errors at this boundary."""

from pigeon.domain.groups import GroupPolicy

from .base import (
    ChatPush, InvitationRecord, LoginCode, MemberRecord, Push, SessionRecord, Store, StreamPage,
    UserRecord,
)
from .sqlite import SqliteStore

__all__ = ["ChatPush", "GroupPolicy", "InvitationRecord", "LoginCode", "MemberRecord", "Push",
           "SessionRecord", "SqliteStore", "Store", "StreamPage", "UserRecord"]
