"""Durable state behind one narrow interface; backends translate their errors at this boundary."""

from pigeon.domain.groups import GroupPolicy

from .base import InvitationRecord, LoginCode, MemberRecord, Push, SessionRecord, Store, UserRecord
from .sqlite import SqliteStore

__all__ = ["GroupPolicy", "InvitationRecord", "LoginCode", "MemberRecord", "Push",
           "SessionRecord", "SqliteStore", "Store", "UserRecord"]
