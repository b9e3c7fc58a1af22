"""The messages a device has seen, kept in its profile and searchable (issue 11, "Search").

One SQLite file, ``<profile>/messages.db`` (0600: it holds what people wrote), with an FTS5
index over the texts. The CLI fills it with what ``receive`` and ``history`` show and what
``send`` sent, and keeps it true: an edit replaces a text, a deletion (for everyone, or for
oneself on any of one's devices) removes the message.

Several CLI processes use one profile at once (``receive --follow`` beside ``send``; issue
11, bug 1): SQLite's own file locks serialise them, WAL lets a search read while another
process writes, and every write is one short transaction (a batch of messages, no fsync of its
own: ``synchronous=NORMAL`` in WAL mode). A lost last batch after a power cut costs only what
``history`` fetches again. Every method here blocks: callers on an event loop run them in a
thread (:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from pigeon.protocol.types import Message, User

ARCHIVE_FILE = "messages.db"
BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for another process's transaction
MAX_RESULTS = 1000
MAX_QUERY_TERMS = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    rowid INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    sender_id INTEGER NOT NULL,
    sender_name TEXT,
    sender_username TEXT,
    date REAL NOT NULL,
    text TEXT NOT NULL,
    reply_to INTEGER,
    edit_date REAL,
    UNIQUE (chat_id, id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    text, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS messages_au AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
"""


class Found(NamedTuple):
    """A message found, with its sender as known when it was kept."""

    message: Message
    sender: User | None


def match_expression(query: str) -> str | None:
    """``query`` as an FTS5 expression that cannot be a syntax error: each word a quoted
    phrase (quotes doubled), matched as a prefix, all of them required. None: no word."""
    # A NUL ends an FTS5 string early ("unterminated string"): it separates words instead.
    words = query.replace("\0", " ").split()[:MAX_QUERY_TERMS]
    if not words:
        return None
    return " AND ".join('"' + word.replace('"', '""') + '"*' for word in words)


class Archive:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / ARCHIVE_FILE
        # Created 0600 before SQLite opens it; its -wal and -shm files take the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000,
                                     isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE: take the write lock up front, so two writers queue (busy_timeout)
        # instead of one failing half-way with SQLITE_BUSY on lock upgrade.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def keep(self, found: Iterable[tuple[Message, User | None]]) -> None:
        """Keep messages (as they are now: a deleted one is removed), in one transaction."""
        rows, gone = [], []
        for msg, sender in found:
            if msg.deleted:
                gone.append((msg.chat_id, msg.id))
                continue
            rows.append((msg.chat_id, msg.id, msg.sender_id, sender.name if sender else None,
                         sender.username if sender else None, msg.date, msg.text, msg.reply_to,
                         msg.edit_date))
        if not rows and not gone:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO messages (chat_id, id, sender_id, sender_name, sender_username, "
                "date, text, reply_to, edit_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (chat_id, id) DO UPDATE SET text = excluded.text, "
                "edit_date = excluded.edit_date, "
                "sender_name = COALESCE(excluded.sender_name, sender_name), "
                "sender_username = COALESCE(excluded.sender_username, sender_username)", rows)
            conn.executemany("DELETE FROM messages WHERE chat_id = ? AND id = ?", gone)

    def forget(self, chat_id: int, message_ids: Iterable[int]) -> None:
        """Remove deleted messages."""
        ids = [(chat_id, i) for i in message_ids]
        if ids:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM messages WHERE chat_id = ? AND id = ?", ids)

    def text(self, chat_id: int, message_id: int) -> str | None:
        row = self._conn.execute("SELECT text FROM messages WHERE chat_id = ? AND id = ?",
                                 (chat_id, message_id)).fetchone()
        return None if row is None else str(row[0])

    def search(self, query: str, chat_id: int | None = None,
               limit: int = 50) -> list[Found]:
        """The newest ``limit`` messages (at most :data:`MAX_RESULTS`) whose text has every
        word of ``query`` (as a word or the start of one; case and accents do not matter),
        in ``chat_id`` or in any chat; newest first."""
        # A command line's bytes that are not UTF-8 arrive as lone surrogates, which SQLite
        # cannot take; no stored text has them (the protocol carries UTF-8), so they match as
        # a character nothing contains.
        query = query.encode("utf-8", "replace").decode("utf-8")
        expression = match_expression(query)
        if expression is None:
            return []
        where = "messages_fts MATCH ?" + (" AND m.chat_id = ?" if chat_id is not None else "")
        args: tuple[object, ...] = (expression,) if chat_id is None else (expression, chat_id)
        rows = self._conn.execute(
            "SELECT m.chat_id, m.id, m.sender_id, m.sender_name, m.sender_username, m.date, "
            "m.text, m.reply_to, m.edit_date FROM messages_fts JOIN messages m "
            f"ON m.rowid = messages_fts.rowid WHERE {where} ORDER BY m.date DESC, m.id DESC "
            "LIMIT ?", (*args, max(1, min(limit, MAX_RESULTS)))).fetchall()
        return [Found(Message(chat_id=c, id=i, sender_id=s, date=d, text=t, reply_to=r,
                              edit_date=e),
                      User(id=s, name=n, username=u) if n is not None else None)
                for c, i, s, n, u, d, t, r, e in rows]
