"""Rows and the steps that several SQLite transactions share (pts numbering, the update log,
membership checks). Runs on the store's threads, never on the event loop."""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

import msgspec

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Forbidden, NotFound
from pigeon.protocol.types import Chat, FwdFrom, Message, Role

from .base import Push, SessionRecord, UserRecord

# update kinds in the log; NEW/EDIT refer to a message row, the rest keep their encoded update
NEW, EDIT, STORED = 1, 2, 3
IN_CHUNK = 500  # host parameters per IN (...) list, well under SQLite's limit

encode = msgspec.msgpack.encode
update_decoder = up.body_decoder  # every update type this process knows
fwd_decoder = msgspec.msgpack.Decoder(FwdFrom)

USER_COLS = "id, phone, name, username, phone_discoverable, pts"
MSG_COLS = "chat_id, id, sender_id, date, text, reply_to, fwd, edit_date, deleted"
SESSION_COLS = "id, user_id, device, address, created, last_active"


def user_row(row: Any) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


def message_row(row: Any) -> Message:
    return Message(
        chat_id=row[0], id=row[1], sender_id=row[2], date=row[3], text=row[4],
        reply_to=row[5], fwd_from=fwd_decoder.decode(row[6]) if row[6] else None,
        edit_date=row[7], deleted=bool(row[8]),
    )


def session_row(row: Any) -> SessionRecord:
    return SessionRecord(*row)


# -- shared steps of several transactions ---------------------------------------------------
def bump(conn: sqlite3.Connection, user_ids: list[int]) -> list[tuple[int, int]]:
    """Give each user their next pts; returns (user_id, pts) pairs."""
    out: list[tuple[int, int]] = []
    for i in range(0, len(user_ids), IN_CHUNK):
        chunk = user_ids[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        out += conn.execute(
            f"UPDATE users SET pts = pts + 1 WHERE id IN ({marks}) RETURNING id, pts", chunk
        ).fetchall()
    return out


def bump_members(conn: sqlite3.Connection, chat_id: int) -> list[tuple[int, int]]:
    return conn.execute(
        "UPDATE users SET pts = pts + 1 WHERE id IN "
        "(SELECT user_id FROM members WHERE chat_id = ?) RETURNING id, pts",
        (chat_id,),
    ).fetchall()


def log_updates(
    conn: sqlite3.Connection, targets: list[tuple[int, int]], kind: int, chat_id: int,
    message_id: int = 0, data: bytes | None = None,
) -> None:
    conn.executemany(
        "INSERT INTO updates (user_id, pts, kind, chat_id, message_id, data) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(uid, pts, kind, chat_id, message_id, data) for uid, pts in targets],
    )


def push_stored(
    conn: sqlite3.Connection, update: Any, user_ids: list[int], chat_id: int
) -> Push:
    targets = bump(conn, user_ids)
    log_updates(conn, targets, STORED, chat_id, 0, encode(update))
    return Push(update, targets)


class Membership(NamedTuple):
    kind: str
    role: Role
    history_from: int
    read_inbox_max_id: int
    last_message_id: int


def membership(conn: sqlite3.Connection, user_id: int, chat_id: int) -> Membership:
    """The user's standing in the chat (and the chat's last message id), or NOT_A_MEMBER. One
    query, because every write in a chat starts here."""
    row = conn.execute(
        "SELECT c.kind, m.role, m.history_from, m.read_inbox_max_id, c.last_message_id "
        "FROM chats c LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = ? WHERE c.id = ?",
        (user_id, chat_id),
    ).fetchone()
    if row is None or row[1] is None:
        raise not_a_member(chat_id)
    return Membership(*row)


def not_a_member(chat_id: int) -> Forbidden:
    """One answer, same code and same words, for a chat that does not exist and a chat the
    caller is not in: telling them apart let anyone learn which chat ids exist (issue 7,
    finding 18)."""
    return Forbidden(f"you are not a member of chat {chat_id}", code="NOT_A_MEMBER")


def chat_view(conn: sqlite3.Connection, chat_id: int, user_id: int) -> Chat:
    row = conn.execute(
        "SELECT c.kind, c.title, c.member_count, c.last_message_id, m.role "
        "FROM chats c LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = ? WHERE c.id = ?",
        (user_id, chat_id),
    ).fetchone()
    if row is None:
        raise not_a_member(chat_id)
    peer = None
    if row[0] == "private":
        peer_row = conn.execute(
            "SELECT user_id FROM members WHERE chat_id = ? AND user_id != ?", (chat_id, user_id)
        ).fetchone()
        peer = peer_row[0] if peer_row else user_id
    return Chat(id=chat_id, kind=row[0], title=row[1], member_count=row[2], peer_id=peer,
                role=row[4], last_message_id=row[3])


def member_ids(conn: sqlite3.Connection, chat_id: int) -> list[int]:
    return [r[0] for r in conn.execute("SELECT user_id FROM members WHERE chat_id = ?", (chat_id,))]


def push_chat_to_members(conn: sqlite3.Connection, chat_id: int, also: tuple[int, ...] | list[int] = ()) -> list[Push]:
    """A ChatUpdate for every member (each sees their own role) and for ``also`` (removed)."""
    by_role: dict[Role | None, list[int]] = {}
    for uid, role in conn.execute("SELECT user_id, role FROM members WHERE chat_id = ?", (chat_id,)):
        by_role.setdefault(role, []).append(uid)
    if also:
        by_role.setdefault(None, []).extend(also)
    pushes = []
    for role, uids in by_role.items():
        view = chat_view(conn, chat_id, uids[0])
        view = msgspec.structs.replace(view, role=role)
        pushes.append(push_stored(conn, up.ChatUpdate(pts=0, chat=view), uids, chat_id))
    return pushes


def existing_users(conn: sqlite3.Connection, user_ids: list[int]) -> list[int]:
    found: set[int] = set()
    for i in range(0, len(user_ids), IN_CHUNK):
        chunk = user_ids[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT id FROM users WHERE id IN ({marks})", chunk))
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise NotFound(f"no user with id {missing[0]}", code="USER_NOT_FOUND")
    return user_ids


def require_admin(role: Role) -> None:
    if role not in ("owner", "admin"):
        raise Forbidden("only the group's owner and admins can do that", code="NOT_ADMIN")


def require_group(kind: str) -> None:
    if kind != "group":
        raise Forbidden("that is only possible in groups", code="FORBIDDEN")


def insert_members(
    conn: sqlite3.Connection, chat_id: int, user_ids: list[int], role: Role, now: float,
    history_from: int,
) -> int:
    cur = conn.executemany(
        "INSERT OR IGNORE INTO members (chat_id, user_id, role, joined, history_from, "
        "read_inbox_max_id) VALUES (?, ?, ?, ?, ?, ?)",
        [(chat_id, uid, role, now, history_from, history_from) for uid in user_ids],
    )
    added = cur.rowcount
    conn.execute("UPDATE chats SET member_count = member_count + ? WHERE id = ?", (added, chat_id))
    return added


def unread_count(conn: sqlite3.Connection, user_id: int, chat_id: int, after: int) -> int:
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM messages m WHERE chat_id = ? AND id > ? AND sender_id != ? "
        "AND deleted = 0 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ? "
        "AND h.chat_id = m.chat_id AND h.message_id = m.id)", (chat_id, after, user_id, user_id),
    ).fetchone()
    return int(count)


