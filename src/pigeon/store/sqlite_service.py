"""SQL of the service account (SQLite backend): the reserved user "Pigeon" that delivers
login codes to an account's logged-in devices, as Telegram's service notifications do.

The service account is created on first use. Its phone is not a phone number
(:data:`~pigeon.domain.admin.SERVICE_PHONE`), so nobody can ask for a code to log in as it; the
chats it writes in are listed in ``service_chats``, where nobody else may write, and nobody
may open a chat with it. It reads nothing, so its own update log is never written.
"""

from __future__ import annotations

import sqlite3

from pigeon.protocol import updates as up
from pigeon.protocol.types import Message

from pigeon.domain.admin import SERVICE_PHONE

from .base import SERVICE_NAME, Push
from .sqlite_log import bump, log_updates
from .sqlite_people import note_private_send
from .sqlite_rows import NEW, insert_members

# Read receipts for the service's messages would be written to its update log, which
# nobody reads: its read_outbox_max_id starts beyond any message id, so none are.
_NEVER_TOLD = 2**62


def service_user_id(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT id FROM users WHERE phone = ?", (SERVICE_PHONE,)).fetchone()
    return row[0] if row else None


def is_service_chat(conn: sqlite3.Connection, chat_id: int) -> bool:
    return conn.execute("SELECT 1 FROM service_chats WHERE chat_id = ?",
                        (chat_id,)).fetchone() is not None


def _q_service_user_id(conn: sqlite3.Connection) -> int | None:
    return service_user_id(conn)


def _service_chat(conn: sqlite3.Connection, service_id: int, user_id: int, now: float) -> int:
    a, b = sorted((service_id, user_id))
    row = conn.execute("SELECT chat_id FROM private_chats WHERE user_a = ? AND user_b = ?",
                       (a, b)).fetchone()
    if row is not None:
        return int(row[0])
    (chat_id,) = conn.execute(
        "INSERT INTO chats (kind, created) VALUES ('private', ?) RETURNING id", (now,)
    ).fetchone()
    conn.execute("INSERT INTO private_chats (user_a, user_b, chat_id) VALUES (?, ?, ?)",
                 (a, b, chat_id))
    conn.execute("INSERT INTO service_chats (chat_id) VALUES (?)", (chat_id,))
    insert_members(conn, chat_id, [user_id, service_id], "member", now, 0)
    conn.execute("UPDATE members SET read_outbox_max_id = ? WHERE chat_id = ? AND user_id = ?",
                 (_NEVER_TOLD, chat_id, service_id))
    return int(chat_id)


def _tx_send_service_message(
    conn: sqlite3.Connection, user_id: int, text: str, now: float
) -> tuple[Message, list[Push]]:
    service_id = service_user_id(conn)
    if service_id is None:
        (service_id,) = conn.execute(
            "INSERT INTO users (phone, name, created) VALUES (?, ?, ?) RETURNING id",
            (SERVICE_PHONE, SERVICE_NAME, now),
        ).fetchone()
    chat_id = _service_chat(conn, service_id, user_id, now)
    (last_id,) = conn.execute("SELECT last_message_id FROM chats WHERE id = ?",
                              (chat_id,)).fetchone()
    message_id = last_id + 1
    conn.execute("UPDATE chats SET last_message_id = ? WHERE id = ?", (message_id, chat_id))
    conn.execute(
        "INSERT INTO messages (chat_id, id, sender_id, date, text) VALUES (?, ?, ?, ?, ?)",
        (chat_id, message_id, service_id, now, text),
    )
    # It wrote to them: they may see who it is (users.get shows only people one shares
    # something with, issue 7 finding 18).
    note_private_send(conn, service_id, chat_id)
    targets = bump(conn, [user_id])  # the service account reads nothing: no update of its own
    log_updates(conn, targets, NEW, chat_id, message_id)
    message = Message(chat_id=chat_id, id=message_id, sender_id=service_id, date=now, text=text)
    return message, [Push(up.NewMessage(pts=0, message=message), targets)]
