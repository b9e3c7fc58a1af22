"""What the operator does to the data (SQLite backend): abuse reports, finding, disabling and
deleting accounts, and an online backup. Reached through the operator listener only
(server/admin.py); nothing here is a client method."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from pigeon.domain import admin

from .base import ReportRecord, UserRecord
from .migrations import migrate
from .sqlite_accounts import sessions_ended
from .sqlite_rows import USER_COLS, user_row


def _q_reports(conn: sqlite3.Connection, after_id: int, limit: int) -> list[ReportRecord]:
    return [ReportRecord(*r) for r in conn.execute(
        "SELECT id, reporter_id, chat_id, message_id, sender_id, text, reason, created "
        "FROM reports WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]


def _q_find_users(conn: sqlite3.Connection, query: str,
                  limit: int) -> list[tuple[UserRecord, bool, int]]:
    """Accounts whose id, phone, @username or name matches: (user, disabled, sessions)."""
    key = admin.search_key(query)
    like = f"%{key.escaped}%"
    rows = conn.execute(
        f"SELECT {USER_COLS}, disabled, (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id) "
        "FROM users u WHERE id = ? OR phone = ? OR username_key = ? "
        "OR phone LIKE ? ESCAPE '\\' OR lower(name) LIKE ? ESCAPE '\\' "
        "OR username_key LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
        (key.user_id, key.phone, key.username, like, like, like, limit)).fetchall()
    n = USER_COLS.count(",") + 1
    return [(user_row(r[:n]), bool(r[n]), r[n + 1]) for r in rows]


def _end_sessions(conn: sqlite3.Connection, user_id: int) -> list[int]:
    return sessions_ended(conn, [r[0] for r in conn.execute(
        "DELETE FROM sessions WHERE user_id = ? RETURNING id", (user_id,))])


def _existing(conn: sqlite3.Connection, user_id: int) -> None:
    row = conn.execute("SELECT phone FROM users WHERE id = ?", (user_id,)).fetchone()
    admin.check_target(user_id, row[0] if row else None)


def _tx_set_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool) -> list[int]:
    """Disable (or enable again) an account; disabling ends its sessions. Returns them."""
    _existing(conn, user_id)
    conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
    return _end_sessions(conn, user_id) if disabled else []


def _tx_delete_user(conn: sqlite3.Connection, user_id: int) -> list[int]:
    """Delete an account: its phone, name, username, sessions, contacts, blocks and pending
    invitations and requests go; its messages stay in their chats, signed by a "Deleted
    account" (as Telegram does), since they are the other members' history too."""
    _existing(conn, user_id)
    conn.execute(
        "UPDATE users SET phone = ?, name = ?, username = NULL, username_key = NULL, "
        "phone_discoverable = 0, disabled = 1 WHERE id = ?",
        (admin.deleted_phone(user_id), admin.DELETED_NAME, user_id))
    for table, columns in admin.PERSONAL_ROWS:
        for column in columns:
            conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (user_id,))
    return _end_sessions(conn, user_id)


def _q_disabled(conn: sqlite3.Connection, user_id: int) -> bool:
    row = conn.execute("SELECT disabled FROM users WHERE id = ?", (user_id,)).fetchone()
    return bool(row and row[0])


def backup(source: Path, target: Path) -> None:
    """A consistent copy of the database at ``source`` into the new file ``target``, while the
    server goes on writing: SQLite's online backup API, in one step, reads one snapshot (WAL
    mode lets the writer carry on meanwhile). Written beside ``target`` and renamed, so a
    backup interrupted half-way never looks complete."""
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            (ok,) = dst.execute("PRAGMA quick_check").fetchone()
            if ok != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its check: {ok}")
        finally:
            dst.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()


def restore(source: Path, target: Path) -> int:
    """Copy the backup ``source`` to the database file ``target`` (which must not exist),
    checked and migrated to this version's schema; returns that schema version."""
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        (ok,) = src.execute("PRAGMA integrity_check").fetchone()
        if ok != "ok":
            raise sqlite3.DatabaseError(f"{source} is damaged: {ok}")
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(dst)
            version = migrate(dst)
        finally:
            dst.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        return version
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
