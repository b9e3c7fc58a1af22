"""Mute and pin (SQLite backend); the rules are :mod:`pigeon.domain.chat_settings`."""

from __future__ import annotations

import sqlite3

from pigeon.domain import audience
from pigeon.domain import chat_settings as rules
from pigeon.protocol import updates as up
from pigeon.protocol.types import Chat

from .base import Push
from .sqlite_log import announce, push_stored
from .sqlite_region_chat import queue_pin
from .sqlite_rows import chat_row, chat_view, message, standing


def _tx_mute_chat(
    conn: sqlite3.Connection, user_id: int, chat_id: int, until: float, now: float
) -> tuple[Chat, list[Push]]:
    standing(conn, user_id, chat_id)  # members only
    conn.execute("UPDATE members SET muted_until = ? WHERE chat_id = ? AND user_id = ?",
                 (rules.mute_until(until, now), chat_id, user_id))
    view = chat_view(conn, chat_id, user_id)
    # Only the user's own devices hear of it: a mute is nobody else's business.
    return view, [push_stored(conn, chat_id, up.ChatUpdate(pts=0, chat=view),
                              audience.only(user_id))]


def _tx_pin_message(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, message_id: int | None, now: float,
    crossing: bool = False,
) -> tuple[Chat, list[Push]]:
    # crossing: this deployment has regions (Store.crosses_regions): a private chat's pin
    # may have to reach the other side's region
    actor = standing(conn, actor_id, chat_id)
    rules.may_pin(actor)
    pinned = 0 if message_id is None else rules.pinnable(
        message(conn, chat_id, message_id), actor, chat_id, message_id)
    # its date and author: in a private chat across regions the last pin wins in both
    # copies (sqlite_region_chat.apply_pin)
    conn.execute("UPDATE chats SET pinned_message_id = ?, pin_date = ?, pin_by = ? WHERE id = ?",
                 (pinned, now, actor_id, chat_id))
    if crossing and actor.kind == "private":
        queue_pin(conn, actor_id, chat_id, pinned, now)
    return chat_view(conn, chat_id, actor_id), announce(conn, chat_id, now=now)


def unpin_deleted(conn: sqlite3.Connection, chat_id: int, deleted_ids: list[int],
                  now: float) -> list[Push]:
    """Deleting the pinned message for everyone unpins it; every member is told."""
    if not rules.unpinned_by_deletion(chat_row(conn, chat_id).pinned_message_id, deleted_ids):
        return []
    conn.execute("UPDATE chats SET pinned_message_id = 0 WHERE id = ?", (chat_id,))
    return announce(conn, chat_id, now=now)
