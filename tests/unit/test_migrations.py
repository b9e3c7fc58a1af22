"""Schema migrations keep what an older database holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pigeon.store.migrations import MIGRATIONS, migrate


def _at_version(path: Path, version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    return conn


def test_sessions_survive_the_autoincrement_rebuild_and_ids_move_on(tmp_path: Path) -> None:
    conn = _at_version(tmp_path / "old.db", 1)
    conn.execute("INSERT INTO users (id, phone, name, created) VALUES (1, '+15550001111', 'A', 0)")
    for sid in (1, 2, 3):
        conn.execute("INSERT INTO sessions (id, user_id, token_hash, device, address, created, "
                     "last_active) VALUES (?, 1, ?, 'phone', '10.0.0.1', 0, 0)",
                     (sid, f"h{sid}".encode()))
    conn.execute("DELETE FROM sessions WHERE id = 3")
    migrate(conn)
    rows = conn.execute("SELECT id, token_hash FROM sessions ORDER BY id").fetchall()
    assert rows == [(1, b"h1"), (2, b"h2")]
    conn.execute("DELETE FROM sessions WHERE id = 2")
    (new_id,) = conn.execute(
        "INSERT INTO sessions (user_id, token_hash, device, address, created, last_active) "
        "VALUES (1, x'00', 'laptop', '', 0, 0) RETURNING id").fetchone()
    assert new_id == 3  # 2 was the highest id copied, and it is not handed out again
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(sessions)")}
    assert "sessions_by_user" in indexes
