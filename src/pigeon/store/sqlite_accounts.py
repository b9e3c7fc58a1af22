"""SQL of login codes, users and sessions (SQLite backend)."""

from __future__ import annotations

import sqlite3
from typing import Any

from pigeon.domain import admin
from pigeon.protocol.errors import Conflict, NotFound
from pigeon.domain.streams import device_stream

from .base import LoginCode, SessionRecord, UserRecord
from .sqlite_rows import IN_CHUNK, SESSION_COLS, USER_COLS, session_row, user_row
from .sqlite_keys import forget as forget_keys
from .sqlite_streams import drop


def _tx_exec(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> None:
    conn.execute(sql, args)


def _tx_save_code(conn: sqlite3.Connection, code: LoginCode) -> None:
    # Expired codes are swept here, on the write path that creates them, so the table stays
    # as small as the number of codes in flight.
    conn.execute("DELETE FROM login_codes WHERE expires < ?", (code.expires - 3600,))
    conn.execute(
        "INSERT INTO login_codes (id, phone, code_hash, expires, attempts) VALUES (?, ?, ?, ?, ?)",
        (code.id, code.phone, code.code_hash, code.expires, code.attempts),
    )


def _tx_take_attempt(
    conn: sqlite3.Connection, code_id: str, now: float, max_attempts: int
) -> LoginCode | None:
    row = conn.execute(
        "UPDATE login_codes SET attempts = attempts + 1 "
        "WHERE id = ? AND attempts < ? AND expires >= ? "
        "RETURNING id, phone, code_hash, expires, attempts",
        (code_id, max_attempts, now),
    ).fetchone()
    if row is None:
        return None
    return LoginCode(row[0], row[1], row[2], row[3], row[4])


def _tx_consume_code(conn: sqlite3.Connection, code_id: str) -> bool:
    # One statement on the single writer: whichever job runs first deletes the row, every
    # later one finds nothing.
    row = conn.execute("DELETE FROM login_codes WHERE id = ? RETURNING id", (code_id,)).fetchone()
    return row is not None


def _tx_create_user(conn: sqlite3.Connection, phone: str, name: str, now: float) -> UserRecord:
    row = conn.execute(f"SELECT {USER_COLS} FROM users WHERE phone = ?", (phone,)).fetchone()
    if row is None:
        row = conn.execute(
            f"INSERT INTO users (phone, name, created) VALUES (?, ?, ?) RETURNING {USER_COLS}",
            (phone, name, now),
        ).fetchone()
    return user_row(row)


def _tx_update_user(
    conn: sqlite3.Connection, user_id: int, name: str | None, username: Any,
    phone_discoverable: bool | None,
) -> UserRecord:
    if name is not None:
        conn.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))
    if username is not ...:
        key = username.lower() if username is not None else None
        try:
            conn.execute(
                "UPDATE users SET username = ?, username_key = ? WHERE id = ?",
                (username, key, user_id),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"@{username} is taken", code="USERNAME_TAKEN") from None
    if phone_discoverable is not None:
        conn.execute(
            "UPDATE users SET phone_discoverable = ? WHERE id = ?",
            (int(phone_discoverable), user_id),
        )
    row = conn.execute(f"SELECT {USER_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")
    return user_row(row)


def _q_user_where(conn: sqlite3.Connection, where: str, value: Any) -> UserRecord | None:
    row = conn.execute(f"SELECT {USER_COLS} FROM users WHERE {where}", (value,)).fetchone()
    return user_row(row) if row else None


def _q_users(conn: sqlite3.Connection, ids: list[int]) -> list[UserRecord]:
    out: list[UserRecord] = []
    for i in range(0, len(ids), IN_CHUNK):
        chunk = ids[i : i + IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        out += [
            user_row(r)
            for r in conn.execute(f"SELECT {USER_COLS} FROM users WHERE id IN ({marks})", chunk)
        ]
    return out


def _tx_create_session(
    conn: sqlite3.Connection, user_id: int, token_hash: bytes, device: str, address: str,
    now: float,
) -> SessionRecord:
    # In the same transaction as the insert: an account disabled while its sign-in was on
    # the way gets no session (the writer is alone, so nothing comes between).
    disabled = conn.execute("SELECT disabled FROM users WHERE id = ?", (user_id,)).fetchone()
    admin.check_enabled(bool(disabled and disabled[0]))
    row = conn.execute(
        "INSERT INTO sessions (user_id, token_hash, device, address, created, last_active) "
        f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {SESSION_COLS}",
        (user_id, token_hash, device, address, now, now),
    ).fetchone()
    return session_row(row)


def _q_session_by_token(conn: sqlite3.Connection, token_hash: bytes) -> SessionRecord | None:
    row = conn.execute(
        f"SELECT {SESSION_COLS} FROM sessions WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    return session_row(row) if row else None


def _q_sessions(conn: sqlite3.Connection, user_id: int) -> list[SessionRecord]:
    rows = conn.execute(
        f"SELECT {SESSION_COLS} FROM sessions WHERE user_id = ? ORDER BY id", (user_id,)
    )
    return [session_row(r) for r in rows]


def _q_session_addresses(conn: sqlite3.Connection, limit: int) -> list[str]:
    rows = conn.execute(
        "SELECT address FROM sessions GROUP BY address ORDER BY MAX(last_active) DESC LIMIT ?",
        (limit,),
    )
    return [r[0] for r in rows]


def _q_live_sessions(conn: sqlite3.Connection, limit: int) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT id, user_id FROM sessions ORDER BY last_active DESC, id DESC LIMIT ?", (limit,))
    return [(r[0], r[1]) for r in rows]


def _tx_delete_sessions(
    conn: sqlite3.Connection, user_id: int, only: int | None, keep: int | None
) -> list[int]:
    if only is not None:
        rows = conn.execute(
            "DELETE FROM sessions WHERE user_id = ? AND id = ? RETURNING id", (user_id, only)
        ).fetchall()
        if not rows:
            raise NotFound(f"you have no session {only}", code="SESSION_NOT_FOUND")
    else:
        rows = conn.execute(
            "DELETE FROM sessions WHERE user_id = ? AND id != ? RETURNING id",
            (user_id, keep if keep is not None else -1),
        ).fetchall()
    return sessions_ended(conn, [r[0] for r in rows])


def sessions_ended(conn: sqlite3.Connection, session_ids: list[int]) -> list[int]:
    """What goes with sessions just deleted, in the same transaction, however they ended (a
    device logged out, terminated, or its account disabled or deleted by the operator)."""
    ended = sorted(session_ids)
    # A device inbox is for that device alone: nobody will ever read it again.
    drop(conn, [device_stream(sid) for sid in ended])
    forget_keys(conn, ended)
    return ended
