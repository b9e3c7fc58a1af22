"""Rows, and the reads and writes that several SQLite transactions share. No rules here: they
are in :mod:`pigeon.domain`; these functions only fetch rows and store what a rule decided.
Runs on SQLite's store threads, or for PostgreSQL in a greenlet between two awaited statements
(postgres_conn.Worker): never blocking the event loop."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from pigeon.domain import membership, people, views
from pigeon.domain.records import ChatRow, MemberRow, Standing
from pigeon.protocol import updates as up
from pigeon.protocol.media import Media
from pigeon.protocol.types import Chat, FwdFrom, Message, MessageSticker, Role

from .base import SessionRecord, UserRecord

# What a row of a log or stream holds: NEW and EDIT refer to a message row (a deletion for
# everyone then wipes its text there too), STORED keeps its encoded update.
NEW, EDIT, STORED = 1, 2, 3

IN_CHUNK = 500  # host parameters per IN (...) list, well under SQLite's limit

encode = msgspec.msgpack.encode
update_decoder = up.body_decoder  # every update type this process knows
fwd_decoder = msgspec.msgpack.Decoder(FwdFrom)
sticker_decoder = msgspec.msgpack.Decoder(MessageSticker)
media_decoder = msgspec.msgpack.Decoder(Media)

USER_COLS = "id, phone, name, username, phone_discoverable, pts"
MSG_COLS = ("chat_id, id, sender_id, date, text, reply_to, fwd, edit_date, deleted, sticker, "
            "media, ciphertext")
SESSION_COLS = "id, user_id, device, address, created, last_active"
MEMBER_COLS = "user_id, role, joined, history_from"
N_MSG_COLS = MSG_COLS.count(",") + 1


def user_row(row: Any) -> UserRecord:
    return UserRecord(row[0], row[1], row[2], row[3], bool(row[4]), row[5])


def message_row(row: Any) -> Message:
    return Message(
        chat_id=row[0], id=row[1], sender_id=row[2], date=row[3], text=row[4],
        reply_to=row[5], fwd_from=fwd_decoder.decode(row[6]) if row[6] else None,
        edit_date=row[7], deleted=bool(row[8]),
        sticker=sticker_decoder.decode(row[9]) if row[9] else None,
        media=media_decoder.decode(row[10]) if row[10] else None,
        ciphertext=row[11],
    )


def session_row(row: Any) -> SessionRecord:
    return SessionRecord(*row)


def prefixed(cols: str, alias: str) -> str:
    """``cols`` of the table known as ``alias`` in a join."""
    return ", ".join(f"{alias}.{c.strip()}" for c in cols.split(","))


def write_later(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    """A write whose outcome nobody reads (no rows, no count; an error fails the whole job).
    SQLite runs it now; PostgreSQL's connection holds it until the job's next statement that
    must answer, or the job's end, and sends the writes held meanwhile as ONE statement: a
    round trip each saved (postgres_conn.SyncConnection.defer)."""
    defer = getattr(conn, "defer", None)
    if defer is None:
        conn.execute(sql, params)
    else:
        defer(sql, params)


def values_rows(width: int, count: int) -> str:
    """``(?, ?), (?, ?)``: ``count`` rows of ``width`` parameters for one INSERT."""
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


def chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


def marks(chunk: list[int]) -> str:
    return ",".join("?" * len(chunk))


# -- reads ------------------------------------------------------------------------------------
def standing(conn: sqlite3.Connection, user_id: int, chat_id: int, *,
             writing: bool = False) -> Standing:
    """The user's standing in the chat (and the chat's last message id), or NOT_A_MEMBER. One
    query, because every write in a chat starts here. ``writing``: a write of the chat's own
    state (not one applied from the stream): refused in a replica (membership.written_here)."""
    row = conn.execute(
        "SELECT c.kind, m.role, m.history_from, m.read_inbox_max_id, c.last_message_id, "
        "c.secret, c.home_region FROM chats c "
        "LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = ? "
        "WHERE c.id = ? /*FOR UPDATE OF c*/",  # writers in other processes: postgres_dialect
        (user_id, chat_id),
    ).fetchone()
    found = membership.member(None if row is None or row[1] is None else Standing(*row),
                              chat_id)
    if writing:
        membership.written_here(found, chat_id)
    return found


def chat_row(conn: sqlite3.Connection, chat_id: int) -> ChatRow:
    row = conn.execute(
        "SELECT id, kind, title, member_count, last_message_id, pinned_message_id, secret "
        "FROM chats WHERE id = ?",
        (chat_id,),
    ).fetchone()
    if row is None:
        raise membership.not_a_member(chat_id)
    return ChatRow(*row)


def member_row(conn: sqlite3.Connection, chat_id: int, user_id: int) -> MemberRow | None:
    row = conn.execute(f"SELECT {MEMBER_COLS} FROM members WHERE chat_id = ? AND user_id = ?",
                       (chat_id, user_id)).fetchone()
    return None if row is None else MemberRow(*row)


def members(conn: sqlite3.Connection, chat_id: int) -> list[MemberRow]:
    return [MemberRow(*r) for r in conn.execute(
        f"SELECT {MEMBER_COLS} FROM members WHERE chat_id = ?", (chat_id,))]


def members_named(conn: sqlite3.Connection, chat_id: int, user_ids: list[int]) -> list[MemberRow]:
    """The rows of these members (those of them who are members), read by key."""
    out: list[MemberRow] = []
    for chunk in chunks(user_ids):
        out += [MemberRow(*r) for r in conn.execute(
            f"SELECT {MEMBER_COLS} FROM members WHERE chat_id = ? "
            f"AND user_id IN ({marks(chunk)})", (chat_id, *chunk))]
    return out


def senior_members(conn: sqlite3.Connection, chat_id: int) -> list[MemberRow]:
    """The members an owner's heir is chosen among (:func:`membership.heir`: the
    longest-standing admin, else member): the oldest admins and the oldest member."""
    admins = [MemberRow(*r) for r in conn.execute(
        f"SELECT {MEMBER_COLS} FROM members WHERE chat_id = ? AND role = 'admin' "
        "ORDER BY joined, user_id LIMIT 1", (chat_id,))]
    return admins + [MemberRow(*r) for r in conn.execute(
        f"SELECT {MEMBER_COLS} FROM members WHERE chat_id = ? AND role != 'owner' "
        "ORDER BY joined, user_id LIMIT 1", (chat_id,))]


def member_ids(conn: sqlite3.Connection, chat_id: int) -> list[int]:
    return [r[0] for r in conn.execute("SELECT user_id FROM members WHERE chat_id = ?", (chat_id,))]


def chat_view(conn: sqlite3.Connection, chat_id: int, user_id: int) -> Chat:
    """The chat as ``user_id`` sees it (with no role if they are not a member)."""
    row = conn.execute(
        "SELECT c.id, c.kind, c.title, c.member_count, c.last_message_id, c.pinned_message_id, "
        "c.secret, m.role, m.muted_until FROM chats c "
        "LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = ? WHERE c.id = ?",
        (user_id, chat_id),
    ).fetchone()
    if row is None:
        raise membership.not_a_member(chat_id)
    chat = ChatRow(*row[:7])
    peer = None
    if chat.kind == "private":
        peer = views.private_peer(user_id, member_ids(conn, chat_id))
    return views.chat_view(chat, row[7], peer, row[8])


def message(conn: sqlite3.Connection, chat_id: int, message_id: int) -> Message | None:
    row = conn.execute(f"SELECT {MSG_COLS} FROM messages WHERE chat_id = ? AND id = ?",
                       (chat_id, message_id)).fetchone()
    return None if row is None else message_row(row)


def messages(conn: sqlite3.Connection, chat_id: int, ids: list[int]) -> list[Message]:
    out: list[Message] = []
    for chunk in chunks(ids):
        out += [message_row(r) for r in conn.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE chat_id = ? AND id IN ({marks(chunk)})",
            (chat_id, *chunk))]
    return out


def existing_users(conn: sqlite3.Connection, user_ids: list[int]) -> None:
    """USER_NOT_FOUND unless every one of ``user_ids`` exists."""
    found: set[int] = set()
    for chunk in chunks(user_ids):
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM users WHERE id IN ({marks(chunk)})", chunk))
    people.require_known(user_ids, found)


def blocked_by(conn: sqlite3.Connection, sender_id: int, user_ids: list[int]) -> set[int]:
    """Those among ``user_ids`` who blocked ``sender_id``."""
    found: set[int] = set()
    for chunk in chunks(user_ids):
        found.update(r[0] for r in conn.execute(
            f"SELECT user_id FROM blocks WHERE peer_id = ? AND user_id IN ({marks(chunk)})",
            (sender_id, *chunk)))
    return found


def unread_count(conn: sqlite3.Connection, user_id: int, chat_id: int, after: int) -> int:
    """How many messages count as unread (:func:`pigeon.domain.messages.counts_as_unread`,
    counted here without loading them)."""
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM messages m WHERE chat_id = ? AND id > ? AND sender_id != ? "
        "AND deleted = 0 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ? "
        "AND h.chat_id = m.chat_id AND h.message_id = m.id)", (chat_id, after, user_id, user_id),
    ).fetchone()
    return int(count)


# -- writes -----------------------------------------------------------------------------------
def insert_members(
    conn: sqlite3.Connection, chat_id: int, user_ids: list[int], role: Role, now: float,
    history_from: int,
) -> int:
    # stream_from: a chat with its own stream is read from where it stood at joining.
    cur = conn.executemany(
        "INSERT OR IGNORE INTO members (chat_id, user_id, role, joined, history_from, "
        "read_inbox_max_id, stream_from) VALUES (?, ?, ?, ?, ?, ?, "
        "COALESCE((SELECT head FROM streams WHERE name = 'chat:' || ?), 0))",
        [(chat_id, uid, role, now, history_from, history_from, chat_id) for uid in user_ids],
    )
    added = cur.rowcount
    conn.execute("UPDATE chats SET member_count = member_count + ? WHERE id = ?", (added, chat_id))
    return added
