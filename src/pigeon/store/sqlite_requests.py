"""Message requests (SQLite backend): listing, accepting, declining. The gate that makes a
private chat a request is in :mod:`.sqlite_safety`; the rules in :mod:`pigeon.domain.requests`."""

from __future__ import annotations

import sqlite3

from pigeon.domain import audience, requests
from pigeon.protocol import updates as up
from pigeon.protocol.types import Chat

from .base import Push, RequestRecord
from .sqlite_log import push_message
from .sqlite_messages import history_page
from .sqlite_rows import USER_COLS, chat_view, prefixed, standing, user_row
from .sqlite_safety import hide, request_state


def _q_requests(conn: sqlite3.Connection, user_id: int, offset: int,
                limit: int) -> list[RequestRecord]:
    """Pending requests that hold a message, newest first; those from people the user blocked
    are left out (their messages are hidden anyway)."""
    rows = conn.execute(
        f"SELECT r.chat_id, r.created, {prefixed(USER_COLS, 'u')} FROM message_requests r "
        "JOIN chats c ON c.id = r.chat_id JOIN users u ON u.id = r.peer_id "
        "JOIN messages last ON last.chat_id = c.id AND last.id = c.last_message_id "
        "WHERE r.user_id = ? AND r.state = 'pending' "
        "AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = r.user_id "
        "AND b.peer_id = r.peer_id) ORDER BY last.date DESC, r.chat_id DESC "
        "LIMIT ? OFFSET ?", (user_id, limit, offset)).fetchall()
    out: list[RequestRecord] = []
    for chat_id, created, *peer in rows:
        last = history_page(conn, user_id, chat_id, 0, None, 1, None)
        out.append(RequestRecord(chat_view(conn, chat_id, user_id), user_row(peer),
                                 last[0] if last else None, created))
    return out


def _answer(conn: sqlite3.Connection, user_id: int, chat_id: int) -> None:
    standing(conn, user_id, chat_id)  # NOT_A_MEMBER for a chat that is not theirs
    requests.answer(request_state(conn, user_id, chat_id), chat_id)


def _tx_accept_request(conn: sqlite3.Connection, user_id: int,
                       chat_id: int) -> tuple[Chat, list[Push]]:
    """Accepted: the chat joins the user's list, and its latest messages reach their devices
    as if they had just been delivered (the rest are in its history)."""
    _answer(conn, user_id, chat_id)
    conn.execute("UPDATE message_requests SET state = 'accepted' WHERE user_id = ? "
                 "AND chat_id = ?", (user_id, chat_id))
    waiting = history_page(conn, user_id, chat_id, 0, None, requests.DELIVERED_ON_ACCEPT, None)
    pushes = [push_message(conn, up.NewMessage(pts=0, message=msg), audience.only(user_id))
              for msg in reversed(waiting)]
    return chat_view(conn, chat_id, user_id), pushes


def _tx_decline_request(conn: sqlite3.Connection, user_id: int, chat_id: int) -> None:
    """Declined: what was sent is hidden from the user now, what comes later as it comes."""
    _answer(conn, user_id, chat_id)
    conn.execute("UPDATE message_requests SET state = 'declined' WHERE user_id = ? "
                 "AND chat_id = ?", (user_id, chat_id))
    hide(conn, user_id, chat_id, [r[0] for r in conn.execute(
        "SELECT id FROM messages WHERE chat_id = ? AND sender_id != ?", (chat_id, user_id))])
