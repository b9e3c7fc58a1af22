"""PostgreSQL plumbing: group commit through a pool, snapshot reads, migrations.

Writes: callers queue jobs; one writer task takes everything queued (up to ``max_batch``)
and runs it as ONE transaction on a pooled connection, each job inside its own SAVEPOINT, so
that a job the domain refuses rolls back alone. Callers hear back only after COMMIT returned:
an acknowledged write is durable (``synchronous_commit`` as the server has it: on by default).

When a batch fails, one bad caller must not fail the others:
- a job that failed in PostgreSQL (not a domain refusal: a deadlock, a constraint) is rolled
  back to its savepoint and retried alone, in its own transaction, after the batch;
- a lost connection before COMMIT was sent means nothing was written: the batch is run once
  more, job by job, each on a fresh connection; whatever fails then gets ``STORAGE_FAILED``;
- a connection lost during COMMIT leaves the outcome unknown: every caller of that batch gets
  ``STORAGE_FAILED`` (retryable; sends are idempotent by ``random_id``), none an ack.

Per-user ``pts`` is gap-free and strictly increasing across processes because the shared SQL
numbers updates with ``UPDATE users SET pts = pts + 1 ... RETURNING pts``: the row lock it
takes is held until COMMIT, and a concurrent writer for the same user waits for it, then
reads the committed value (READ COMMITTED re-reads the updated row).

Reads run in one REPEATABLE READ, READ ONLY transaction each: all of a read's statements see
one snapshot, as SQLite's reader transactions do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg

from pigeon.protocol.errors import PigeonError, Unavailable

from .migrations import MIGRATIONS
from .postgres_conn import CONNECTION_ERRORS, Connection, Pool, SyncConnection
from .postgres_dialect import translate_ddl

log = logging.getLogger("pigeon.store")

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]
_MIGRATION_LOCK = 0x5049_4745_4F4E  # "PIGEON": one process migrates at a time


class _Retry(Exception):
    """A job failed in PostgreSQL inside a batch; it gets another go on its own."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Lost(Exception):
    """The connection died under a batch; ``committing`` says whether COMMIT was on its way."""

    def __init__(self, cause: BaseException, committing: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.committing = committing


class CommitStats:
    def __init__(self) -> None:
        self.batches = 0
        self.jobs = 0
        self.last_batch = 0
        self.commit_seconds = 0.0
        self.retried = 0
        self.failed_batches = 0


def storage_failed(exc: BaseException) -> Unavailable:
    return Unavailable(f"storage failed: {type(exc).__name__}: {exc}", code="STORAGE_FAILED")


async def migrate(conn: Connection) -> int:
    """Bring the schema to the newest version, each step one transaction, under an advisory
    lock so that workers starting together migrate once."""
    raw = conn.raw
    async with raw.transaction():
        await raw.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await raw.execute("CREATE TABLE IF NOT EXISTS pigeon_schema (version BIGINT NOT NULL)")
        version = await raw.fetchval("SELECT version FROM pigeon_schema")
        if version is None:
            await raw.execute("INSERT INTO pigeon_schema (version) VALUES (0)")
            version = 0
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the database is at schema version {version}, newer than this Pigeon "
                f"({len(MIGRATIONS)}): upgrade Pigeon instead")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with raw.transaction():  # a savepoint: one step applies whole or not at all
                for statement in translate_ddl(script):
                    await raw.execute(statement)
                await raw.execute("UPDATE pigeon_schema SET version = $1", number)
    return len(MIGRATIONS)


class PostgresEngine:
    def __init__(self, dsn: str, max_batch: int = 512, readers: int = 4) -> None:
        self.dsn = dsn
        self.max_batch = max_batch
        self.stats = CommitStats()
        self.pool = Pool(dsn, size=readers + 2)
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.Task[None] | None = None
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="pigeon-pg-write")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="pigeon-pg-read")
        self._closed = False

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = await self.pool.acquire()
        try:
            await migrate(conn)
        finally:
            self.pool.release(conn)
        self._writer = asyncio.create_task(self._run_writer(), name="pigeon-pg-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._writer is not None:
            await self._writer
        await asyncio.to_thread(self._write_thread.shutdown)
        await asyncio.to_thread(self._readers.shutdown)
        await self.pool.close()

    async def ping(self) -> None:
        """Raises unless PostgreSQL answers (readiness checks)."""
        conn = await self.pool.acquire()
        try:
            await conn.raw.fetchval("SELECT 1")
        except CONNECTION_ERRORS:
            conn.broken = True
            raise
        finally:
            self.pool.release(conn)

    # -- writes -----------------------------------------------------------------------------
    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(conn, *args)``; the future resolves after its batch committed."""
        assert self._loop is not None, "store is not open"
        if self._closed:
            raise Unavailable("the store is shutting down", code="SHUTTING_DOWN")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put_nowait((fn, args, fut))
        return fut

    async def _run_writer(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch: list[Job] = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                job = self._queue.get_nowait()
                if job is None:
                    stopping = True  # finish this batch first: callers wait on it
                    break
                batch.append(job)
            try:
                await self._commit_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - the writer must outlive any batch
                log.exception("store writer: batch failed unexpectedly")
                _settle([(fut, None, storage_failed(exc)) for _, _, fut in batch])

    async def _commit_batch(self, batch: list[Job]) -> None:
        started = time.perf_counter()
        stats = self.stats
        stats.batches += 1
        stats.jobs += len(batch)
        stats.last_batch = len(batch)
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        retry: list[Job] = []
        try:
            conn = await self.pool.acquire()
        except CONNECTION_ERRORS as exc:
            stats.failed_batches += 1
            _settle([(fut, None, storage_failed(exc)) for _, _, fut in batch])
            return
        try:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(
                self._write_thread, self._run_batch, SyncConnection(conn, loop), batch)
            for (job, (result, exc)) in zip(batch, results, strict=True):
                if isinstance(exc, _Retry):
                    retry.append(job)
                else:
                    outcomes.append((job[2], result, exc))
        except _Lost as lost:
            conn.broken = True
            stats.failed_batches += 1
            log.error("store: connection lost under a batch of %d: %s", len(batch), lost.cause)
            if lost.committing:
                outcomes = [(fut, None, storage_failed(lost.cause)) for _, _, fut in batch]
            else:
                outcomes, retry = [], list(batch)  # nothing was written: each tries again
        finally:
            self.pool.release(conn)
        _settle(outcomes)
        for job in retry:
            stats.retried += 1
            await self._run_alone(job)
        stats.commit_seconds += time.perf_counter() - started

    def _run_batch(self, sync: SyncConnection,
                   batch: list[Job]) -> list[tuple[Any, BaseException | None]]:
        """On the writer thread: every job of the batch in one transaction."""
        conn = sync.conn
        wait = sync._wait  # noqa: SLF001 - same module family
        results: list[tuple[Any, BaseException | None]] = []
        committing = False
        try:
            wait(conn.script("BEGIN; SAVEPOINT job"))
            for i, (fn, args, _) in enumerate(batch):
                if i:
                    wait(conn.script("SAVEPOINT job"))
                try:
                    result = fn(sync, *args)
                except CONNECTION_ERRORS:
                    raise
                except PigeonError as exc:
                    wait(conn.script("ROLLBACK TO job; RELEASE job"))
                    results.append((None, exc))
                except Exception as exc:  # noqa: BLE001 - that job alone tries again
                    wait(conn.script("ROLLBACK TO job; RELEASE job"))
                    results.append((None, _Retry(exc)))
                else:
                    wait(conn.script("RELEASE job"))
                    results.append((result, None))
            committing = True
            wait(conn.script("COMMIT"))
        except CONNECTION_ERRORS as exc:
            raise _Lost(exc, committing) from exc
        except asyncpg.PostgresError as exc:
            # COMMIT refused (or a savepoint command failed): nothing of the batch stands
            log.error("store: batch of %d rolled back: %s", len(batch), exc)
            try:
                wait(conn.script("ROLLBACK"))
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as again:
                raise _Lost(again, committing=False) from again
            return [(None, _Retry(exc))] * len(batch)
        return results

    async def _run_alone(self, job: Job) -> None:
        fn, args, fut = job
        try:
            conn = await self.pool.acquire()
        except CONNECTION_ERRORS as exc:
            _settle([(fut, None, storage_failed(exc))])
            return
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._write_thread, self._run_one, SyncConnection(conn, loop), fn, args)
        except PigeonError as exc:
            _settle([(fut, None, exc)])
        except Exception as exc:  # noqa: BLE001 - goes back to that job's caller
            if isinstance(exc, CONNECTION_ERRORS):
                conn.broken = True
            log.error("store: a write failed alone too: %s", exc)
            _settle([(fut, None, _translate(exc))])
        else:
            _settle([(fut, result, None)])
        finally:
            self.pool.release(conn)

    @staticmethod
    def _run_one(sync: SyncConnection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        wait = sync._wait  # noqa: SLF001
        wait(sync.conn.script("BEGIN"))
        try:
            result = fn(sync, *args)
        except BaseException:
            if not sync.conn.raw.is_closed():
                wait(sync.conn.script("ROLLBACK"))
            raise
        wait(sync.conn.script("COMMIT"))
        return result

    # -- reads ------------------------------------------------------------------------------
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None, "store is not open"
        for attempt in (1, 2):  # a dead idle connection (PostgreSQL restarted) gets one retry
            try:
                conn = await self.pool.acquire()
            except CONNECTION_ERRORS as exc:
                raise storage_failed(exc) from exc
            try:
                return await self._read_on(conn, fn, args)
            except CONNECTION_ERRORS as exc:
                conn.broken = True
                if attempt == 2:
                    raise storage_failed(exc) from exc
            except PigeonError:
                raise
            except Exception as exc:
                raise _translate(exc) from exc
            finally:
                self.pool.release(conn)
        raise AssertionError("unreachable")

    async def _read_on(self, conn: Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        loop = asyncio.get_running_loop()
        await conn.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            result = await loop.run_in_executor(
                self._readers, lambda: fn(SyncConnection(conn, loop), *args))
        finally:
            if not conn.raw.is_closed():
                await conn.script("ROLLBACK")
        return result


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, result, exc in outcomes:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, PigeonError):
        return exc
    if isinstance(exc, _Retry):
        exc = exc.cause
    if isinstance(exc, (asyncpg.PostgresError, *CONNECTION_ERRORS)) or "sqlite3" in type(
            exc).__module__:
        log.error("storage error: %s", exc)
        return storage_failed(exc)
    log.error("internal error in a store job", exc_info=exc)
    return PigeonError("internal error")
