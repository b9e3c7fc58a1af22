"""Versioned schema migrations for SQLite, applied in order at start (PRAGMA user_version)."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the core messenger
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        phone TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        username TEXT,
        username_key TEXT UNIQUE,
        phone_discoverable INTEGER NOT NULL DEFAULT 0,
        pts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE login_codes (
        id TEXT PRIMARY KEY,
        phone TEXT NOT NULL,
        code_hash BLOB NOT NULL,
        expires REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        token_hash BLOB NOT NULL UNIQUE,
        device TEXT NOT NULL,
        address TEXT NOT NULL,
        created REAL NOT NULL,
        last_active REAL NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE chats (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        last_message_id INTEGER NOT NULL DEFAULT 0,
        member_count INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE private_chats (
        user_a INTEGER NOT NULL,
        user_b INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        PRIMARY KEY (user_a, user_b)
    ) WITHOUT ROWID;
    CREATE TABLE members (
        chat_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        role TEXT NOT NULL,
        joined REAL NOT NULL,
        history_from INTEGER NOT NULL DEFAULT 0,
        read_inbox_max_id INTEGER NOT NULL DEFAULT 0,
        read_outbox_max_id INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX members_by_user ON members(user_id, chat_id);
    CREATE TABLE messages (
        chat_id INTEGER NOT NULL,
        id INTEGER NOT NULL,
        sender_id INTEGER NOT NULL,
        date REAL NOT NULL,
        text TEXT NOT NULL,
        reply_to INTEGER,
        fwd BLOB,
        edit_date REAL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (chat_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE hidden_messages (
        user_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        PRIMARY KEY (user_id, chat_id, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE random_ids (
        sender_id INTEGER NOT NULL,
        random_id INTEGER NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        pts INTEGER NOT NULL,
        PRIMARY KEY (sender_id, random_id)
    ) WITHOUT ROWID;
    CREATE TABLE updates (
        user_id INTEGER NOT NULL,
        pts INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        chat_id INTEGER NOT NULL DEFAULT 0,
        message_id INTEGER NOT NULL DEFAULT 0,
        data BLOB,
        PRIMARY KEY (user_id, pts)
    ) WITHOUT ROWID;
    """,
    # 2: the chats of the service account (login codes delivered in the app): only it writes
    """
    CREATE TABLE service_chats (
        chat_id INTEGER PRIMARY KEY
    );
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"the database is at schema version {version}, newer than this Pigeon "
            f"({len(MIGRATIONS)}): upgrade Pigeon instead"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
