"""PostgreSQL connections for the store's shared synchronous SQL.

The store's operations are synchronous functions of a connection (see :mod:`.sqlite`); here
they run in a greenlet against :class:`SyncConnection`, which looks enough like
``sqlite3.Connection`` (``execute``, ``executemany``, cursors with ``fetchone``, ``fetchall``,
``rowcount``, iteration) and has each statement awaited with asyncpg on the server's own
event loop (:class:`Worker`), which never blocks: it waits for PostgreSQL as for any socket.

Each connection keeps its prepared statements (parse once, bind many times), with how to
coerce each parameter to the type PostgreSQL inferred (:func:`.postgres_dialect.coercers`).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

import asyncpg
import greenlet

from .postgres_dialect import TEXT_TYPES, coerce, coercers, translate, unescape_text

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 60.0
MAX_HELD = 8  # writes held back at most before they go (SyncConnection.defer)
UNNEST_AT = 32  # rows inserted by one executemany from which they go as arrays (run_many)

# Errors that say the connection, not the statement, failed: the work on it is lost, the
# connection is dropped, and the next one is opened afresh.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError, asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionFailureError, asyncpg.exceptions.TooManyConnectionsError,
)


def _decode_numeric(text: str) -> int | float:
    # SUM over BIGINT is NUMERIC in PostgreSQL; SQLite gives an int, and so do we
    try:
        return int(text)
    except ValueError:
        return float(text)


class Connection:
    """One PostgreSQL connection with its prepared statements."""

    def __init__(self, raw: asyncpg.Connection, writing: bool) -> None:
        self.raw = raw
        self.writing = writing  # lock hints become FOR UPDATE (postgres_dialect)
        self.broken = False
        self._statements: dict[str, tuple[Any, list[Any], list[int]]] = {}

    async def _prepared(self, sql: str) -> tuple[Any, list[Any], list[int]]:
        entry = self._statements.get(sql)
        if entry is None:
            stmt = await self.raw.prepare(translate(sql, self.writing))
            texts = [i for i, a in enumerate(stmt.get_attributes()) if a.type.name in TEXT_TYPES]
            entry = (stmt, coercers([t.name for t in stmt.get_parameters()]), texts)
            self._statements[sql] = entry
        return entry

    async def run(self, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], int]:
        """Rows and the count of rows the statement touched."""
        stmt, how, texts = await self._prepared(sql)
        rows = [tuple(r) for r in await stmt.fetch(*coerce(params, how), timeout=COMMAND_TIMEOUT)]
        if texts:
            rows = [_unescaped(row, texts) for row in rows]
        return rows, _count(stmt.get_statusmsg())

    async def run_many(self, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        stmt, how, _ = await self._prepared(sql)
        many = list(seq)
        if len(many) >= UNNEST_AT and (target := _plain_insert(sql)) is not None:
            # many rows (a group message's log rows): ONE statement that inserts them all
            # from an array per column, where PostgreSQL would otherwise run the insert once
            # per row (~10x its CPU for a 1,000-member group's message)
            bulk = await self._unnest_form(sql, stmt, target)
            columns = list(zip(*(coerce(p, how) for p in many), strict=True))
            await bulk.fetch(*(list(c) for c in columns), timeout=COMMAND_TIMEOUT)
            return len(many)
        if len(many) > 1 and _inserts_one_row_each(sql):
            # one round trip for all (asyncpg pipelines them); each inserts one row or fails
            await stmt.executemany([coerce(p, how) for p in many], timeout=COMMAND_TIMEOUT)
            return len(many)
        total = 0
        for params in many:
            await stmt.fetch(*coerce(params, how), timeout=COMMAND_TIMEOUT)
            total += _count(stmt.get_statusmsg())
        return total

    async def _unnest_form(self, sql: str, single: Any, target: str) -> Any:
        key = "unnest:" + sql
        entry = self._statements.get(key)
        if entry is None:
            arrays = ", ".join(f"${i}::{t.schema}.{t.name}[]"
                               for i, t in enumerate(single.get_parameters(), start=1))
            bulk = await self.raw.prepare(f"INSERT INTO {target} SELECT * FROM unnest({arrays})")
            entry = self._statements[key] = (bulk, [], [])
        return entry[0]

    async def script(self, sql: str) -> None:
        """Statements without parameters, in one round trip (simple query protocol)."""
        await self.raw.execute(sql, timeout=COMMAND_TIMEOUT)


_PLAIN_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(\w+\s*\([\w\s,]+\))\s*VALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*;?\s*$",
    re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _plain_insert(sql: str) -> str | None:
    """``table (columns)`` of an ``INSERT INTO table (columns) VALUES (?, ...)`` whose values
    are all parameters, one per column: it can take its rows as arrays (unnest)."""
    match = _PLAIN_INSERT.match(sql)
    return " ".join(match.group(1).split()) if match else None


@functools.lru_cache(maxsize=1024)
def _inserts_one_row_each(sql: str) -> bool:
    """``INSERT INTO ... VALUES (...)``: a row for each set of parameters, or an error, so that
    the count of rows is known without asking (an ``OR IGNORE`` or an ``INSERT ... SELECT``
    may write fewer, and an ``UPDATE`` any number, which the caller may read)."""
    text = " ".join(sql.upper().split())
    return (text.startswith("INSERT INTO ") and " VALUES " in text and "SELECT" not in text
            and "CONFLICT" not in text and "RETURNING" not in text)


def _unescaped(row: tuple[Any, ...], texts: list[int]) -> tuple[Any, ...]:
    if not any(row[i] is not None and "\x01" in row[i] for i in texts):
        return row
    out = list(row)
    for i in texts:
        if out[i] is not None:
            out[i] = unescape_text(out[i])
    return tuple(out)


def _count(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class Cursor:
    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def close(self) -> None:
        self._next = len(self._rows)


class Worker:
    """One PostgreSQL connection, and the synchronous work (a batch, a read) that runs on it,
    on the server's own event loop.

    The store's functions are synchronous and issue many small statements. :meth:`call` runs
    one such function in a greenlet; each statement it waits for (:meth:`run`) switches to
    the loop's side, which awaits it with asyncpg like any other I/O, and switches back with
    the result (SQLAlchemy's way of calling asyncio from synchronous code). The loop never
    blocks: between two statements the work only computes (the domain's rules on the rows
    it read). There is no thread: a statement costs asyncpg's own work on the server's loop
    (uvloop: ~12 us of CPU on these machines), where a thread of its own cost ~50-90 us more
    (waking it, handing the GIL back and forth with the busy server loop, a second event
    loop; measured, see docs/architecture.md).
    The connection is opened on first use and again after it failed, so that the store
    recovers by itself when PostgreSQL comes back.
    """

    def __init__(self, dsn: str, writing: bool) -> None:
        self.dsn = dsn
        self.writing = writing
        self.conn: Connection | None = None
        self.opened = 0
        self._driven: Any = None  # the greenlet of the work that call() runs now

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro``'s result, from within :meth:`call`: awaited on the loop's side."""
        driven = self._driven
        if driven is None or greenlet.getcurrent() is not driven:
            coro.close()
            raise RuntimeError("a statement outside Worker.call")
        return cast(T, driven.parent.switch(coro))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, synchronous, with every statement it runs through :meth:`run`
        awaited on this loop. One call at a time per worker (its connection is one)."""
        if self._driven is not None:
            raise RuntimeError("this connection is busy with other work")
        self._driven = greenlet.greenlet(fn)  # its parent: the loop's
        try:
            return cast(T, await _drive(self._driven, args))
        finally:
            self._driven = None

    def connection(self) -> Connection:
        if self.conn is not None and (self.conn.broken or self.conn.raw.is_closed()):
            self.drop()
        if self.conn is None:
            self.conn = self.run(connect(self.dsn, self.writing))
            self.opened += 1
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.raw.terminate()
            self.conn = None

    async def close(self) -> None:
        if self.conn is not None:
            try:
                await asyncio.wait_for(self.conn.raw.close(), CONNECT_TIMEOUT)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                self.conn.raw.terminate()
            self.conn = None


class SyncConnection:
    """The face of a :class:`Connection` that the shared SQL sees, inside :meth:`Worker.call`.

    A unique or foreign-key violation is raised as ``sqlite3.IntegrityError``, the one
    storage error the shared SQL catches (a taken @username); every other error goes up as
    asyncpg raised it, to the engine.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.conn = worker.connection()
        # Whether undoing the work since it was last reset needs a rollback: set by anything
        # but a plain read (a write, a failed statement, a one-time key claimed with SKIP
        # LOCKED). Group commit runs a batch without savepoints while every refused job
        # left it unset (postgres_engine).
        self.dirty = False
        self.failed = False  # a statement failed: PostgreSQL aborted the transaction
        # Writes held back (defer): they go together, as one statement, before the next
        # statement that must answer or at the end of the job (flush).
        self._held: list[tuple[str, tuple[Any, ...]]] = []
        self._held_tables: set[str] = set()

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self.worker.run(coro)
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            self.dirty = self.failed = True
            raise sqlite3.IntegrityError(str(exc)) from exc
        except BaseException:
            self.dirty = self.failed = True  # the transaction is aborted, or the connection
            raise

    def script(self, sql: str) -> None:
        if sql.startswith("ROLLBACK"):
            self.discard()  # what was held back is undone with the rest
        else:
            self.flush()
        self.dirty = True
        self.wait(self.conn.script(sql))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self._held and _touches(sql).isdisjoint(self._held_tables):
            # it reads none of what is held: the held writes ride in front of it, as WITH
            # clauses of the same statement (no round trip of their own)
            held, self._held, self._held_tables = self._held, [], set()
            sql = _merged(tuple(statement for statement, _ in held), sql)
            params = (*(value for _, values in held for value in values), *params)
        else:
            self.flush()
        if not _plain_read(sql):
            self.dirty = True
        rows, count = self.wait(self.conn.run(sql, params))
        return Cursor(rows, count)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        self.flush()
        self.dirty = True
        return Cursor([], self.wait(self.conn.run_many(sql, list(seq))))

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose outcome the caller never reads (:func:`.sqlite_rows.write_later`):
        held back, to go with the writes after it as one statement (a round trip each saved;
        a send's three writes to chats, messages and members go as one). Any other statement,
        and the job's end, sends what is held first, so that every read sees it; a write to
        a table that already has one held sends those first, so that no statement changes a
        row twice. A write that is not a plain INSERT ... VALUES, UPDATE or DELETE (one that
        reads other tables, or returns rows) goes at once."""
        table = _deferrable_table(sql)
        if table is None:
            self.execute(sql, params)
            return
        if table in self._held_tables or len(self._held) >= MAX_HELD:
            self.flush()
        self.dirty = True
        self._held.append((sql, tuple(params)))
        self._held_tables.add(table)

    def flush(self) -> None:
        """Send the writes held back (:meth:`defer`), all in one statement."""
        if not self._held:
            return
        held, self._held, self._held_tables = self._held, [], set()
        if len(held) == 1:
            sql, params = held[0]
        else:
            sql = _merged(tuple(statement for statement, _ in held))
            params = tuple(value for _, values in held for value in values)
        self.wait(self.conn.run(sql, params))

    def discard(self) -> None:
        """Forget the writes held back: their job failed, its transaction rolls back."""
        self._held, self._held_tables = [], set()


_WRITE_TARGET = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _deferrable_table(sql: str) -> str | None:
    """The table a write that may be held back writes to; None for a write that may not: one
    that returns rows, reads another table (a sub-SELECT: it would not see the writes held
    with it, which PostgreSQL runs on one snapshot), ignores conflicts (its count may be
    read), or numbers its parameters (?NNN: merged, they would collide)."""
    upper = sql.upper()
    if "RETURNING" in upper or "SELECT" in upper or re.search(r"\?\d", sql):
        return None
    if re.match(r"\s*INSERT\s+OR\b", upper):
        return None
    match = _WRITE_TARGET.match(sql)
    return match.group(1).lower() if match else None


_TABLE_REFERENCE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def _touches(sql: str) -> frozenset[str]:
    """Every table a statement names (reads or writes); a statement of a shape this cannot
    read (WITH: its own clauses; a numbered ?NNN, which the held writes' parameters would
    shift) touches everything, so that what is held goes before it, on its own."""
    if sql.lstrip()[:4].upper() == "WITH" or re.search(r"\?\d", sql):
        return _EVERYTHING
    return frozenset(t.lower() for t in _TABLE_REFERENCE.findall(sql))


class _Everything(frozenset[str]):
    def isdisjoint(self, other: Iterable[Any]) -> bool:
        return False


_EVERYTHING = _Everything()


@functools.lru_cache(maxsize=256)
def _merged(statements: tuple[str, ...], last: str = "SELECT 1") -> str:
    """Held writes in front of ``last`` as one statement: PostgreSQL runs each
    data-modifying WITH clause exactly once, to completion, whether or not the query reads it,
    all on the statement's one snapshot: they write different tables, and ``last`` reads
    none of them (:meth:`SyncConnection.defer`). Still SQLite's dialect: translated as any."""
    clauses = ", ".join(f"w{i} AS ({sql.strip().rstrip(';')})"
                        for i, sql in enumerate(statements))
    return f"WITH {clauses} {last}"


@functools.lru_cache(maxsize=4096)
def _plain_read(sql: str) -> bool:
    """A SELECT that changes nothing a rollback would have to undo. A row lock it takes
    (``FOR UPDATE``) may be held until the batch commits, as a job that succeeded holds its
    own; a one-time key claimed with ``SKIP LOCKED`` may not: others would skip it."""
    return sql.lstrip()[:6].upper() == "SELECT" and "SKIP LOCKED" not in sql.upper()


async def _drive(work: Any, args: tuple[Any, ...]) -> Any:
    """Runs the greenlet ``work`` to its end, awaiting each awaitable it switches out with
    and switching back in with the result (SQLAlchemy's way of calling asyncio from sync)."""
    pending = work.switch(*args)
    while not work.dead:
        try:
            value = await pending
        except BaseException as exc:  # noqa: BLE001 - raised where the work waited
            pending = work.throw(exc)
        else:
            pending = work.switch(value)
    return pending


async def connect(dsn: str, writing: bool = False) -> Connection:
    raw = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                                statement_cache_size=0)
    await raw.set_type_codec("numeric", schema="pg_catalog", encoder=str,
                             decoder=_decode_numeric, format="text")
    return Connection(raw, writing)
