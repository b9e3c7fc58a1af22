"""The chats list (SQLite backend): one page of a user's dialogs, newest first."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from pigeon.domain import paging
from pigeon.domain.messages import unread_after
from pigeon.protocol.types import Dialog

from .base import DIALOG_PAGE_BYTES
from .sqlite_messages import history_page
from .sqlite_rows import chat_view, unread_count


def _q_dialogs(
    conn: sqlite3.Connection, user_id: int, limit: int, before: paging.DialogCursor | None,
    max_bytes: int = DIALOG_PAGE_BYTES,
) -> list[Dialog]:
    """One page of dialogs by (date, chat id) descending (:func:`paging.dialog_date` and
    :func:`paging.dialog_follows`, which the query computes so as to read only one page of
    chats). The cost of a page is bounded by ``limit`` and its size by ``max_bytes``, whatever
    the number of chats (issue 7, finding 7: 6,000 groups listed at once stalled others).
    Message requests not accepted (:func:`pigeon.domain.requests.in_chat_list`) are left out:
    strangers cannot fill the list."""
    after_date, after_id = before if before is not None else (float("inf"), 0)
    rows = conn.execute(
        "SELECT * FROM (SELECT m.chat_id, m.history_from, m.read_inbox_max_id, "
        "m.read_outbox_max_id, MAX(m.joined, COALESCE(msg.date, 0)) AS top "
        "FROM members m JOIN chats c ON c.id = m.chat_id "
        "LEFT JOIN messages msg ON msg.chat_id = c.id AND msg.id = c.last_message_id "
        "WHERE m.user_id = ? AND NOT EXISTS (SELECT 1 FROM message_requests r "
        "WHERE r.user_id = m.user_id AND r.chat_id = m.chat_id AND r.state != 'accepted')) AS d "
        "WHERE top < ? OR (top = ? AND chat_id < ?) "
        "ORDER BY top DESC, chat_id DESC LIMIT ?",
        (user_id, after_date, after_date, after_id if before is not None else 0, limit),
    ).fetchall()
    return paging.page(_dialogs(conn, user_id, rows), limit, max_bytes)


def _dialogs(conn: sqlite3.Connection, user_id: int, rows: list[Any]) -> Iterator[Dialog]:
    for chat_id, history_from, read_in, read_out, top in rows:
        last = history_page(conn, user_id, chat_id, history_from, None, 1, None)
        yield Dialog(
            chat=chat_view(conn, chat_id, user_id), last_message=last[0] if last else None,
            unread_count=unread_count(conn, user_id, chat_id, unread_after(read_in, history_from)),
            read_inbox_max_id=read_in, read_outbox_max_id=read_out, date=top,
        )
