"""Group commit on PostgreSQL: one bad caller in a batch fails alone, and a refusal by the
domain rolls back only its own job."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from pigeon.protocol.errors import Conflict, Unavailable
from pigeon.store.postgres import PostgresStore
from pigeon.store.postgres_conn import UNNEST_AT, _deferrable_table, _touches
from pigeon.store.sqlite_rows import write_later


def _broken(conn: Any) -> None:
    conn.execute("SELECT * FROM no_such_table")  # PostgreSQL refuses: not a domain error


def _refused(conn: Any, phone: str) -> None:
    conn.execute("INSERT INTO users (phone, name, created) VALUES (?, 'x', 1.0)", (phone,))
    raise Conflict("the domain says no", code="NO")


async def test_a_failing_job_fails_alone_and_the_rest_commit(pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        # queued in one go (the writer takes batches as it finds them): a broken job and a
        # refused one among twenty good ones
        users = [store.create_user(f"+1555030{i:04d}", f"u{i}", 1.0) for i in range(10)]
        more = [store.create_user(f"+1555031{i:04d}", f"v{i}", 1.0) for i in range(10)]
        first = asyncio.gather(*users)
        await asyncio.sleep(0)  # the first ten are queued now
        bad = store.engine.write(_broken)
        refused = store.engine.write(_refused, "+15550309999")
        created = await first + await asyncio.gather(*more)
        assert len({u.id for u in created}) == 20
        with pytest.raises(Unavailable) as info:
            await bad
        assert info.value.code == "STORAGE_FAILED"
        with pytest.raises(Conflict):
            await refused
        assert await store.user_by_phone("+15550309999") is None  # its insert rolled back
        assert store.stats().retried >= 1  # the broken job had its second go, alone
        assert store.postgres.stats.fallbacks >= 1  # the batch ran again, with savepoints
        assert store.stats().writes >= 22
    finally:
        await store.close()


def _refused_before_writing(conn: Any) -> None:
    conn.execute("SELECT id FROM users WHERE phone = ?", ("+0",))
    raise Conflict("the domain says no", code="NO")


async def test_a_refusal_before_any_write_needs_no_savepoints(pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        first = [store.create_user(f"+1555032{i:04d}", f"u{i}", 1.0) for i in range(10)]
        await asyncio.sleep(0)
        refused = [store.engine.write(_refused_before_writing) for _ in range(5)]
        more = [store.create_user(f"+1555033{i:04d}", f"v{i}", 1.0) for i in range(10)]
        created = await asyncio.gather(*first, *more)
        assert len({u.id for u in created}) == 20
        for job in refused:
            with pytest.raises(Conflict):
                await job
        assert store.postgres.stats.fallbacks == 0  # the batch ran once, without savepoints
    finally:
        await store.close()


def _insert_many(conn: Any, phones: list[str], or_ignore: bool) -> int:
    verb = "INSERT OR IGNORE INTO" if or_ignore else "INSERT INTO"
    cur = conn.executemany(f"{verb} users (phone, name, created) VALUES (?, 'x', 1.0)",
                           [(p,) for p in phones])
    return int(cur.rowcount)


async def test_executemany_counts_the_rows_it_wrote(pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        # plain inserts go in one round trip, each one row; OR IGNORE counts only what it wrote
        phones = [f"+15550340{i:03d}" for i in range(3)]
        assert await store.engine.write(_insert_many, phones, False) == 3
        assert await store.engine.write(_insert_many, [*phones, "+15550349999"], True) == 1
        for phone in [*phones, "+15550349999"]:
            assert await store.user_by_phone(phone) is not None
    finally:
        await store.close()


def _insert_or_note(conn: Any, phone: str) -> str:
    try:
        conn.execute("INSERT INTO users (phone, name, created) VALUES (?, 'x', 1.0)", (phone,))
    except sqlite3.IntegrityError:
        return "taken"  # goes on after PostgreSQL refused: its transaction is aborted
    return "inserted"


async def test_a_job_that_goes_on_after_a_refused_statement_spoils_no_batch(
        pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        assert await store.engine.write(_insert_or_note, "+15550350000") == "inserted"
        first = [store.create_user(f"+1555036{i:04d}", f"u{i}", 1.0) for i in range(10)]
        await asyncio.sleep(0)
        again = store.engine.write(_insert_or_note, "+15550350000")
        more = [store.create_user(f"+1555037{i:04d}", f"v{i}", 1.0) for i in range(10)]
        created = await asyncio.gather(*first, *more)
        assert len({u.id for u in created}) == 20
        assert await again == "taken"
    finally:
        await store.close()


# -- writes held back (write_later): sent together, seen by what follows, failing their job --
def _held_then_read(conn: Any, phone: str) -> tuple[int, int]:
    write_later(conn, "INSERT INTO users (phone, name, created) VALUES (?, 'held', 1.0)",
                (phone,))
    write_later(conn, "UPDATE users SET name = 'renamed' WHERE phone = ?", (phone,))  # same
    # table: the insert must have gone first, or this would change nothing
    (count,) = conn.execute("SELECT count(*) FROM users WHERE phone = ? AND name = 'renamed'",
                            (phone,)).fetchone()
    write_later(conn, "UPDATE users SET pts = 7 WHERE phone = ?", (phone,))  # held to the end
    return count, 0


def _held_duplicate(conn: Any, phone: str) -> None:
    # a unique violation in a write held back: it must fail this job, not the next one
    write_later(conn, "INSERT INTO users (phone, name, created) VALUES (?, 'dup', 1.0)",
                (phone,))


async def test_held_writes_are_seen_by_later_statements_and_fail_their_own_job(
        pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        taken = await store.create_user("+15550340000", "taken", 1.0)
        jobs = [store.engine.write(_held_then_read, f"+1555034{i:04d}") for i in range(1, 6)]
        dup = store.engine.write(_held_duplicate, taken.phone)
        jobs += [store.engine.write(_held_then_read, f"+1555035{i:04d}") for i in range(5)]
        for job in jobs:
            assert await job == (1, 0)
        with pytest.raises(Unavailable):  # STORAGE_FAILED, its own: the others committed
            await dup
        for i in range(5):
            user = await store.user_by_phone(f"+1555035{i:04d}")
            assert user is not None and user.name == "renamed" and user.pts == 7
        assert store.stats().retried >= 1  # the duplicate was tried again, alone
    finally:
        await store.close()


@pytest.mark.parametrize("sql, table", [
    ("INSERT INTO messages (chat_id, id) VALUES (?, ?)", "messages"),
    ("UPDATE chats SET last_message_id = ? WHERE id = ?", "chats"),
    ("DELETE FROM hidden_messages WHERE user_id = ?", "hidden_messages"),
    ("INSERT OR IGNORE INTO wrote_to (user_id, peer_id) VALUES (?, ?)", None),  # count read
    ("UPDATE users SET pts = pts + 1 WHERE id = ? RETURNING pts", None),  # answers
    ("INSERT INTO updates SELECT * FROM other", None),  # reads another table
    ("UPDATE members SET role = ?2 WHERE chat_id = ?1", None),  # numbered parameters
    ("SELECT 1", None),
])
def test_which_writes_may_be_held(sql: str, table: str | None) -> None:
    assert _deferrable_table(sql) == table


def test_what_a_statement_touches() -> None:
    assert _touches("UPDATE users SET pts = pts + 1 WHERE id IN (SELECT user_id FROM members "
                    "WHERE chat_id = ?) RETURNING id, pts") == {"users", "members"}
    assert _touches("SELECT 1 FROM a JOIN b ON a.x = b.y") == {"a", "b"}
    assert not _touches("WITH x AS (SELECT 1) SELECT * FROM x").isdisjoint({"anything"})


def _log_rows(conn: Any, rows: list[tuple[Any, ...]]) -> int:
    cur = conn.executemany("INSERT INTO updates (user_id, pts, kind, chat_id, message_id, data) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
    return int(cur.rowcount)


def _read_log(conn: Any, user_id: int) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT user_id, pts, kind, chat_id, message_id, data FROM updates "
                        "WHERE user_id = ? ORDER BY pts", (user_id,)).fetchall()


async def test_many_rows_go_as_arrays_and_come_back_the_same(pg_url: str) -> None:
    store = PostgresStore(pg_url, readers=1)
    await store.open()
    try:
        user = await store.create_user("+15550360000", "u", 1.0)
        rows = [(user.id, 1000 + i, 3, i, i * 7, None if i % 3 else bytes([i % 256, 0]) * i)
                for i in range(UNNEST_AT * 3)]
        assert await store.engine.write(_log_rows, rows) == len(rows)
        assert await store.engine.read(_read_log, user.id) == rows
        with pytest.raises(Unavailable):  # a duplicate key among them: the job fails whole
            await store.engine.write(_log_rows, rows[:UNNEST_AT] + rows[:1])
        assert len(await store.engine.read(_read_log, user.id)) == len(rows)
    finally:
        await store.close()
