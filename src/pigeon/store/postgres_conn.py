"""PostgreSQL connections for the store's shared synchronous SQL, and the pool that holds them.

The store's operations are synchronous functions of a connection (see :mod:`.sqlite`); here
they run on a worker thread against :class:`SyncConnection`, which looks enough like
``sqlite3.Connection`` (``execute``, ``executemany``, cursors with ``fetchone``, ``fetchall``,
``rowcount``, iteration) and hands each statement to asyncpg on the event loop, waiting for
the answer. The event loop never blocks; the worker thread does, as SQLite's do on disk.

Each connection keeps its prepared statements (parse once, bind many times), with how to
coerce each parameter to the type PostgreSQL inferred (:func:`.postgres_dialect.coercers`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg

from .postgres_dialect import TEXT_TYPES, coerce, coercers, translate, unescape_text

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 60.0

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

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw
        self.broken = False
        self._statements: dict[str, tuple[Any, list[Any], list[int]]] = {}

    async def _prepared(self, sql: str) -> tuple[Any, list[Any], list[int]]:
        entry = self._statements.get(sql)
        if entry is None:
            stmt = await self.raw.prepare(translate(sql))
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
        total = 0
        for params in seq:
            await stmt.fetch(*coerce(params, how), timeout=COMMAND_TIMEOUT)
            total += _count(stmt.get_statusmsg())
        return total

    async def script(self, sql: str) -> None:
        """Statements without parameters, in one round trip (simple query protocol)."""
        await self.raw.execute(sql, timeout=COMMAND_TIMEOUT)


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


class SyncConnection:
    """The face of a :class:`Connection` that the shared SQL sees, on a worker thread.

    A unique or foreign-key violation is raised as ``sqlite3.IntegrityError``, the one
    storage error the shared SQL catches (a taken @username); every other error goes up as
    asyncpg raised it, to the engine.
    """

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self._loop = loop

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
        except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        rows, count = self._wait(self.conn.run(sql, params))
        return Cursor(rows, count)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        return Cursor([], self._wait(self.conn.run_many(sql, list(seq))))


async def connect(dsn: str) -> Connection:
    raw = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
                                statement_cache_size=0)
    await raw.set_type_codec("numeric", schema="pg_catalog", encoder=str,
                             decoder=_decode_numeric, format="text")
    return Connection(raw)


class Pool:
    """At most ``size`` connections, opened on demand, reused while they work. A connection
    that failed is closed rather than returned, so that after PostgreSQL restarts the pool
    fills again with fresh ones."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self.opened = 0
        self.failures = 0

    @property
    def in_use(self) -> int:
        return self.size - self._slots._value  # noqa: SLF001 - a gauge, read only

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self) -> Connection:
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.raw.is_closed():
                    return conn
            conn = await connect(self.dsn)
            self.opened += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection) -> None:
        if conn.broken or conn.raw.is_closed():
            self.failures += 1
            conn.raw.terminate()
        else:
            self._idle.append(conn)
        self._slots.release()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await asyncio.wait_for(conn.raw.close(), CONNECT_TIMEOUT)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.raw.terminate()
