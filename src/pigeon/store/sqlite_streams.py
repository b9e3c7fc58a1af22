"""Streams other than a user's own (SQLite backend): a large chat's, a device's inbox.

Numbering follows :func:`pigeon.domain.streams.allocate`: the transaction reads the stream's
head, takes the next positions and writes the new head with its items. SQLite has one writer,
so nobody reads the head between the two; PostgreSQL does the same under ``SELECT ... FOR
UPDATE`` on the head row (the contract suite drives many writers at once at either).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import msgspec

from pigeon.domain import paging, streams
from pigeon.protocol import updates as up

from .base import ChatPush, Push, StreamPage
from .sqlite_rows import (
    EDIT,
    MSG_COLS,
    NEW,
    STORED,
    chunks,
    encode,
    marks,
    message_row,
    prefixed,
    update_decoder,
)

ItemRow = tuple[int, int, bytes | None]  # (kind, ref, body)


def append(conn: sqlite3.Connection, stream: str, rows: list[ItemRow], now: float) -> range:
    """Append items to ``stream``; returns their positions."""
    found = conn.execute("SELECT head FROM streams WHERE name = ? /*FOR UPDATE*/",
                         (stream,)).fetchone()
    seqs = streams.allocate(0 if found is None else found[0], len(rows))
    if not seqs:
        return seqs
    conn.execute("INSERT INTO streams (name, head) VALUES (?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET head = excluded.head", (stream, seqs[-1]))
    conn.executemany(
        "INSERT INTO stream_items (stream, seq, kind, ref, body, created) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(stream, seq, kind, ref, body, now)
         for seq, (kind, ref, body) in zip(seqs, rows, strict=True)])
    return seqs


def head(conn: sqlite3.Connection, stream: str) -> int:
    found = conn.execute("SELECT head FROM streams WHERE name = ? /*FOR UPDATE*/",
                         (stream,)).fetchone()
    return 0 if found is None else int(found[0])


def drop(conn: sqlite3.Connection, names: list[str]) -> None:
    """Forget these streams and their items (a chat that is gone, a session that ended)."""
    for name in names:
        conn.execute("DELETE FROM stream_items WHERE stream = ?", (name,))
        conn.execute("DELETE FROM streams WHERE name = ?", (name,))


# -- a large chat's stream ---------------------------------------------------------------------
def push_chat(conn: sqlite3.Connection, chat_id: int, update: Any, now: float) -> Push:
    """One item on the chat's stream for every member at once. A message update refers to
    its message row; any other is stored whole."""
    if isinstance(update, up.NewMessage | up.EditMessage):
        row: ItemRow = (NEW if isinstance(update, up.NewMessage) else EDIT,
                        update.message.id, None)
    else:
        row = (STORED, 0, encode(update))
    stream = streams.chat_stream(chat_id)
    (seq,) = append(conn, stream, [row], now)
    return ChatPush(msgspec.structs.replace(update, pts=seq), [])


def _q_chat_stream(conn: sqlite3.Connection, user_id: int, chat_id: int, after: int,
                   limit: int, max_bytes: int) -> StreamPage:
    """The items of ``chat:<chat_id>`` after ``after`` that the member may read."""
    stream = streams.chat_stream(chat_id)
    member = conn.execute(
        "SELECT m.history_from, m.stream_from, c.kind FROM members m JOIN chats c "
        "ON c.id = m.chat_id WHERE m.chat_id = ? AND m.user_id = ?", (chat_id, user_id),
    ).fetchone()
    if member is None or not streams.on_chat_stream(member[2]):
        raise streams.not_followed(stream)
    history_from, stream_from = int(member[0]), int(member[1])
    start = streams.first_readable(stream_from, after)
    reached = head(conn, stream)
    cursor = conn.execute(
        f"SELECT s.seq, s.kind, s.body, {prefixed(MSG_COLS, 'm')} "
        "FROM stream_items s LEFT JOIN messages m ON s.kind IN (1, 2) AND m.chat_id = ? "
        "AND m.id = s.ref WHERE s.stream = ? AND s.seq > ? ORDER BY s.seq LIMIT ?",
        (chat_id, stream, start, limit))
    try:
        return _page(_chat_updates(cursor, history_from), start, reached, limit, max_bytes)
    finally:
        cursor.close()  # a cut page never reads the rows after it


def _chat_updates(cursor: sqlite3.Cursor, history_from: int) -> Iterator[tuple[int, Any]]:
    for row in cursor:
        seq, kind = row[0], row[1]
        if kind == STORED:
            update = msgspec.structs.replace(update_decoder.decode(row[2]), pts=seq)
        else:
            # Members read from their joining on (stream_from), so a new message they get is
            # newer than their history's start; an edit of an older one is the rule's case.
            cls = up.NewMessage if kind == NEW else up.EditMessage
            update = cls(pts=seq, message=message_row(row[3:]))
        yield seq, streams.chat_item_for(update, history_from)


def _page(rows: Iterator[tuple[int, Any]], after: int, reached: int, limit: int,
          max_bytes: int) -> StreamPage:
    return StreamPage(*paging.stream_page(rows, after, reached, limit, max_bytes))


# -- device inboxes ---------------------------------------------------------------------------
def _tx_append_to_devices(conn: sqlite3.Connection, session_ids: list[int], body: bytes,
                          now: float) -> dict[int, int]:
    """One item for each of these devices' inboxes, in one transaction; returns each
    existing session's new position (a session that ended gets nothing)."""
    streams.check_devices(session_ids)
    streams.check_envelopes([body])
    live: list[int] = []
    for chunk in chunks(sorted(set(session_ids))):
        live += [r[0] for r in conn.execute(
            f"SELECT id FROM sessions WHERE id IN ({marks(chunk)}) ORDER BY id", chunk)]
    return {sid: append(conn, streams.device_stream(sid), [(STORED, 0, body)], now)[0]
            for sid in live}


def _tx_append_stream(conn: sqlite3.Connection, stream: str, bodies: list[bytes],
                      now: float) -> range:
    streams.check_envelopes(bodies)
    return append(conn, stream, [(STORED, 0, b) for b in bodies], now)


def _q_raw_page(conn: sqlite3.Connection, stream: str, after: int, limit: int,
                max_bytes: int) -> StreamPage:
    """Items of any stream as their stored bytes (a device inbox's envelopes)."""
    reached = head(conn, stream)
    cursor = conn.execute("SELECT seq, body FROM stream_items WHERE stream = ? AND seq > ? "
                          "ORDER BY seq LIMIT ?", (stream, after, limit))
    try:
        return _page(((seq, msgspec.Raw(body)) for seq, body in cursor), after, reached,
                     limit, max_bytes)
    finally:
        cursor.close()


def _tx_ack(conn: sqlite3.Connection, stream: str, seq: int) -> int:
    """Delete the items up to ``seq``; returns how many went."""
    return conn.execute("DELETE FROM stream_items WHERE stream = ? AND seq <= ?",
                        (stream, seq)).rowcount


def _tx_purge_devices(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Delete at most ``limit`` device inbox items created before ``before`` (unacknowledged
    for longer than the retention allows); a bounded step, so it never holds the writer
    long: the caller repeats it while it returns ``limit``."""
    return conn.execute(
        "DELETE FROM stream_items WHERE (stream, seq) IN (SELECT stream, seq FROM stream_items "
        "WHERE stream >= 'device:' AND stream < 'device;' AND created < ? LIMIT ?)",
        (before, limit)).rowcount

