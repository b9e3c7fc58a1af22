"""PostgreSQL plumbing: group commit by writer tasks, snapshot reads by reader tasks.

The shape is SQLite's (:mod:`.sqlite_engine`): the store's operations are synchronous
functions of a connection. Here each runs in a greenlet on the server's own event loop
(:class:`.postgres_conn.Worker`), each statement awaited with asyncpg like any socket I/O:
no thread, so no hand-over of the GIL or a second event loop per statement (which cost
~50-90 us of CPU a statement on these machines; docs/architecture.md, "PostgreSQL").
Each of the ``writers + readers`` tasks owns one connection: the process's pool; each
reconnects by itself after a failure.

Writes: callers queue jobs; a writer takes everything queued (up to ``max_batch``)
and runs it as ONE transaction. A job the domain refuses must roll back alone, as in SQLite's
savepoint per job; but a savepoint is a round trip per job, and nearly every refusal comes
before the job wrote anything. So a batch first runs without savepoints; only when a job
fails after it wrote (or PostgreSQL refuses a statement, or COMMIT) is the transaction rolled
back and the batch run again with a SAVEPOINT per job, which undoes that job alone. Callers
hear back only after COMMIT returned: an acknowledged write is durable (``synchronous_commit``
as the server has it: on by default).

When a batch fails, one bad caller must not fail the others:
- a job that failed in PostgreSQL (not a domain refusal: a deadlock, a constraint) is rolled
  back to its savepoint and retried alone, in its own transaction, after the batch;
- a lost connection before COMMIT was sent means nothing was written: the batch is run once
  more, job by job, on a fresh connection; whatever fails then gets ``STORAGE_FAILED``;
- a connection lost during COMMIT leaves the outcome unknown: every caller of that batch gets
  ``STORAGE_FAILED`` (retryable; sends are idempotent by ``random_id``), none an ack.

Writers run side by side in several processes (workers, nodes) and, with ``writers`` > 1,
in one: while one waits for PostgreSQL another works. Callers hear back on the loop as soon
as their COMMIT returned, so a writer that waited for another's row lock (the same user's
``pts``) answers after it: each user's pushes leave this process in ``pts`` order. Jobs go to
writers by acting user (:func:`_shard`): one user's writes keep their order. Two batches may
lock the same rows in opposite orders; PostgreSQL then refuses one job (deadlock), which is
rolled back to its savepoint and retried alone.

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
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg

from pigeon.protocol.errors import PigeonError, Unavailable

from .migrations import MIGRATIONS
from .postgres_conn import CONNECTION_ERRORS, Connection, SyncConnection, Worker, connect
from .postgres_dialect import redacted, translate_ddl
from .sqlite_engine import settle

log = logging.getLogger("pigeon.store")

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]
# A job's function -> how a run of such jobs is done together (:mod:`.postgres_bulk`)
Bulk = Callable[[SyncConnection, list[tuple[Any, ...]], Callable[..., Any]],
                list[tuple[Any, BaseException | None]]]
Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]
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


class MustUndo(Exception):
    """A job failed after it wrote (or in PostgreSQL): the batch must be rolled back and run
    again with a savepoint per job."""


def attempt(sync: SyncConnection, fn: Callable[..., Any],
            args: tuple[Any, ...]) -> tuple[Any, PigeonError | None]:
    """One job inside a batch run without savepoints: its result, or the domain's refusal
    when it came before the job wrote anything (nothing to undo); :class:`MustUndo` when the
    job cannot be undone alone. A lost connection goes up as it is."""
    sync.dirty = False
    try:
        result = fn(sync, *args)
        sync.flush()  # its held-back writes fail it, not the job after it
    except CONNECTION_ERRORS:
        raise
    except PigeonError as exc:
        if sync.dirty:
            raise MustUndo() from exc
        return None, exc
    except Exception as exc:
        raise MustUndo() from exc
    if sync.failed:  # it went on after an error it caught: nothing of the batch stands
        raise MustUndo()
    return result, None


class CommitStats:
    def __init__(self) -> None:
        self.batches = 0
        self.jobs = 0
        self.last_batch = 0
        self.commit_seconds = 0.0
        self.retried = 0
        self.failed_batches = 0
        self.fallbacks = 0  # batches run again with a savepoint per job
        self.together = 0  # jobs given to a bulk form (postgres_bulk), in runs of two or more


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
    """``writers`` writers (group commit each) and ``readers`` readers, each a task on the
    server's loop with its own connection: ``writers + readers`` connections per process."""

    def __init__(self, dsn: str, max_batch: int = 512, readers: int = 4,
                 writers: int = 1, bulk: dict[Callable[..., Any], Bulk] | None = None) -> None:
        self.dsn = dsn
        self.bulk = bulk or {}
        self.max_batch = max_batch
        self.readers = readers
        self.writers = writers
        self.stats = CommitStats()
        self._queues: list[asyncio.Queue[Job | None]] = []
        self._reads: asyncio.Queue[Job | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[Worker] = []
        self._closed = False
        # With several writers, one COMMIT at a time, and its callers answered before the
        # next: see _commit.
        self._turn = asyncio.Lock()
        self._turn_holder: Worker | None = None

    @property
    def connections(self) -> int:
        """Connections open now (a gauge for /metrics)."""
        return sum(1 for w in self._workers if w.conn is not None)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            conn = await connect(self.dsn)
            try:
                await migrate(conn)
            finally:
                await conn.raw.close()
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else exc
            raise Unavailable(f"cannot open the store at {redacted(self.dsn)}: {reason}",
                              code="STORAGE_FAILED") from None
        self._queues = [asyncio.Queue() for _ in range(self.writers)]
        for i, jobs in enumerate(self._queues):
            self._tasks.append(asyncio.create_task(
                self._run_writer(jobs, self._worker(True)), name=f"pigeon-pg-writer-{i}"))
        reads: asyncio.Queue[Job | None] = asyncio.Queue()
        self._reads = reads
        for i in range(self.readers):
            self._tasks.append(asyncio.create_task(
                self._run_reader(reads, self._worker(False)), name=f"pigeon-pg-reader-{i}"))

    def _worker(self, writing: bool) -> Worker:
        worker = Worker(self.dsn, writing)
        self._workers.append(worker)
        return worker

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for jobs in self._queues:
            jobs.put_nowait(None)
        if self._reads is not None:
            for _ in range(self.readers):
                self._reads.put_nowait(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers, self._workers = self._workers, []
        for worker in workers:
            await worker.close()

    async def ping(self) -> None:
        """Raises STORAGE_FAILED unless PostgreSQL answers (readiness checks)."""
        await self.read(_ping)

    # -- writes -----------------------------------------------------------------------------
    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(conn, *args)``; the future resolves after its batch committed."""
        assert self._loop is not None, "store is not open"
        if self._closed:
            raise Unavailable("the store is shutting down", code="SHUTTING_DOWN")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queues[_shard(args, len(self._queues))].put_nowait((fn, args, fut))
        return fut

    async def _run_writer(self, jobs: asyncio.Queue[Job | None], worker: Worker) -> None:
        stopping = False
        while not stopping:
            first = await jobs.get()
            if first is None:
                break
            batch: list[Job] = [first]
            while len(batch) < self.max_batch and not jobs.empty():
                job = jobs.get_nowait()
                if job is None:
                    stopping = True  # finish this batch first: callers wait on it
                    break
                batch.append(job)
            try:
                await worker.call(self._commit_batch, worker, batch)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any batch
                log.exception("store writer: batch failed unexpectedly")
                self._settle(worker, [(fut, None, storage_failed(exc)) for _, _, fut in batch])

    def _commit(self, sync: SyncConnection) -> None:
        """COMMIT, holding the turn when several writers share this process, until the
        batch's callers are answered (:meth:`_settle`). A writer that waited for another's
        row lock (the same user's ``pts``) can only commit after that one committed; the turn
        makes it also answer after that one answered, so that each user's pushes leave this
        process in ``pts`` order. Only COMMIT waits for the turn: the statements of one
        writer's batch still run while another commits."""
        if self.writers > 1 and self._turn_holder is not sync.worker:
            sync.worker.run(self._turn.acquire())
            self._turn_holder = sync.worker
        try:
            sync.script("COMMIT")
        except BaseException:
            # Nothing committed, nobody to answer in order; and what this writer runs next
            # (the batch again, with savepoints) may wait for a row lock of a writer that
            # waits for the turn: a deadlock PostgreSQL could not see.
            self._give_turn(sync.worker)
            raise

    def _give_turn(self, writer: Worker) -> None:
        if self._turn_holder is writer:
            self._turn_holder = None
            self._turn.release()

    def _settle(self, writer: Worker, outcomes: list[Outcome]) -> None:
        settle(outcomes)
        self._give_turn(writer)

    def _commit_batch(self, writer: Worker, batch: list[Job]) -> None:
        started = time.perf_counter()
        stats = self.stats
        stats.batches += 1
        stats.jobs += len(batch)
        stats.last_batch = len(batch)
        outcomes: list[Outcome] = []
        retry: list[Job] = []
        if len(batch) == 1:  # alone, it needs no savepoint: one round trip fewer
            self._settle(writer, [self._run_alone(writer, batch[0], attempts=2)])
            stats.commit_seconds += time.perf_counter() - started
            return
        try:
            results = self._run_optimistic(SyncConnection(writer), batch)
            if results is None:  # a job must be undone alone: again, each in a savepoint
                stats.fallbacks += 1
                results = self._run_batch(SyncConnection(writer), batch)
            for job, (result, exc) in zip(batch, results, strict=True):
                if isinstance(exc, _Retry):
                    retry.append(job)
                else:
                    outcomes.append((job[2], result, exc))
        except CONNECTION_ERRORS as exc:  # could not connect: nothing started
            writer.drop()
            stats.failed_batches += 1
            outcomes = [(fut, None, storage_failed(exc)) for _, _, fut in batch]
        except _Lost as lost:
            writer.drop()
            stats.failed_batches += 1
            log.error("store: connection lost under a batch of %d: %s", len(batch), lost.cause)
            if lost.committing:
                outcomes = [(fut, None, storage_failed(lost.cause)) for _, _, fut in batch]
            else:
                retry = list(batch)  # nothing was written: each tries again, alone
        self._settle(writer, outcomes)
        for i, job in enumerate(retry):
            stats.retried += 1
            outcome = self._run_alone(writer, job)
            self._settle(writer, [outcome])
            if writer.conn is None and outcome[2] is not None:
                # PostgreSQL is unreachable: the rest would each wait for a connection too
                cause = outcome[2]
                self._settle(writer, [(fut, None, cause) for _, _, fut in retry[i + 1:]])
                break
        stats.commit_seconds += time.perf_counter() - started

    def _run_optimistic(self, sync: SyncConnection,
                        batch: list[Job]) -> list[tuple[Any, BaseException | None]] | None:
        """Every job of the batch in one transaction, without savepoints: nearly every job
        either succeeds or is refused by the domain before it wrote anything, and then there
        is nothing of its own to undo. None (the transaction rolled back) when a job failed
        otherwise, or after it wrote, or COMMIT was refused: the caller runs the batch again
        with a savepoint per job, so that such a job still leaves nothing behind."""
        results: list[tuple[Any, BaseException | None]] = []
        committing = False
        try:
            sync.script("BEGIN")
            while len(results) < len(batch):
                fn, args, _ = batch[len(results)]
                together = self._together(batch, len(results))
                if together:
                    self.stats.together += len(together)
                    try:
                        results += self.bulk[fn](sync, together, fn)
                    except CONNECTION_ERRORS:
                        raise
                    except Exception:  # noqa: BLE001 - MustUndo, or PostgreSQL refused a statement
                        break
                    continue
                try:
                    results.append(attempt(sync, fn, args))
                except MustUndo:
                    break
            if len(results) == len(batch):
                committing = True
                self._commit(sync)
                return results
        except CONNECTION_ERRORS as exc:
            raise _Lost(exc, committing) from exc
        except asyncpg.PostgresError as exc:
            log.warning("store: a batch of %d is tried again with savepoints: %s",
                        len(batch), exc)
        try:
            sync.script("ROLLBACK")
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as again:
            raise _Lost(again, committing=False) from again
        return None

    def _together(self, batch: list[Job], start: int) -> list[tuple[Any, ...]]:
        """The arguments of the run of jobs from ``start`` that can be done together (the
        same function, with a bulk form); empty when it is one job or none."""
        fn = batch[start][0]
        if fn not in self.bulk:
            return []
        end = start + 1
        while end < len(batch) and batch[end][0] is fn:
            end += 1
        return [args for _, args, _ in batch[start:end]] if end - start > 1 else []

    def _run_batch(self, sync: SyncConnection,
                   batch: list[Job]) -> list[tuple[Any, BaseException | None]]:
        """Every job of the batch in one transaction, each in its own savepoint."""
        results: list[tuple[Any, BaseException | None]] = []
        committing = False
        try:
            # One round trip between two jobs: the release of one with the savepoint of the
            # next (a savepoint of the same name hides the older one until it is released).
            sync.script("BEGIN; SAVEPOINT job")
            for fn, args, _ in batch:
                try:
                    result = fn(sync, *args)
                    sync.flush()
                except CONNECTION_ERRORS:
                    raise
                except PigeonError as exc:
                    sync.script("ROLLBACK TO job; RELEASE job; SAVEPOINT job")
                    results.append((None, exc))
                except Exception as exc:  # noqa: BLE001 - that job alone tries again
                    sync.script("ROLLBACK TO job; RELEASE job; SAVEPOINT job")
                    results.append((None, _Retry(exc)))
                else:
                    sync.script("RELEASE job; SAVEPOINT job")
                    results.append((result, None))
            committing = True
            self._commit(sync)
        except CONNECTION_ERRORS as exc:
            raise _Lost(exc, committing) from exc
        except asyncpg.PostgresError as exc:
            # COMMIT refused (or a savepoint command failed): nothing of the batch stands
            log.error("store: batch of %d rolled back: %s", len(batch), exc)
            try:
                sync.script("ROLLBACK")
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as again:
                raise _Lost(again, committing=False) from again
            return [(None, _Retry(exc))] * len(batch)
        return results

    def _run_alone(self, writer: Worker, job: Job, attempts: int = 1) -> Outcome:
        """A job in a transaction of its own, on a working connection; with ``attempts`` > 1
        a failure that left nothing written (a deadlock, a connection lost before COMMIT) is
        tried again. A connection lost during COMMIT is never retried: it may have landed."""
        fn, args, fut = job
        for attempt in range(1, attempts + 1):
            committing = False
            try:
                sync = SyncConnection(writer)
                sync.script("BEGIN")
                try:
                    result = fn(sync, *args)
                    sync.flush()
                except BaseException:
                    sync.discard()
                    if not sync.conn.raw.is_closed():
                        sync.script("ROLLBACK")
                    raise
                committing = True
                self._commit(sync)
            except PigeonError as exc:
                return (fut, None, exc)
            except Exception as exc:  # noqa: BLE001 - goes back to that job's caller
                if isinstance(exc, CONNECTION_ERRORS):
                    writer.drop()
                if attempt < attempts and not committing:
                    continue
                log.error("store: a write failed alone: %s", exc)
                return (fut, None, _translate(exc))
            return (fut, result, None)
        raise AssertionError("unreachable")

    # -- reads ------------------------------------------------------------------------------
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None and self._reads is not None, "store is not open"
        if self._closed:
            raise Unavailable("the store is shutting down", code="SHUTTING_DOWN")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._reads.put_nowait((fn, args, fut))
        return await fut  # a caller that stops waiting leaves the read to finish alone

    async def _run_reader(self, reads: asyncio.Queue[Job | None], worker: Worker) -> None:
        while (job := await reads.get()) is not None:
            fn, args, fut = job
            try:
                result = await worker.call(self._read, worker, fn, args)
            except Exception as exc:  # noqa: BLE001 - goes back to its caller
                settle([(fut, None, exc)])
            else:
                settle([(fut, result, None)])

    @staticmethod
    def _read(worker: Worker, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        for attempt in (1, 2):  # a dead connection (PostgreSQL restarted) gets one retry
            try:
                return _in_snapshot(worker, fn, args)
            except CONNECTION_ERRORS as exc:
                worker.drop()
                if attempt == 2:
                    raise storage_failed(exc) from exc
            except PigeonError:
                raise
            except Exception as exc:
                raise _translate(exc) from exc
        raise AssertionError("unreachable")


def _shard(args: tuple[Any, ...], writers: int) -> int:
    """Which writer takes a job: by its first argument, the acting user for nearly every
    operation, so that one user's writes commit in the order they were made (as with
    SQLite's single writer) while different users' go through writers side by side."""
    if writers == 1 or not args or not isinstance(args[0], (int, str)):
        return 0
    return hash((args[0],)) % writers  # a tuple mixes the bits: ids alike in parity spread


def _in_snapshot(worker: Worker, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    sync = SyncConnection(worker)
    sync.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return fn(sync, *args)
    finally:
        if not sync.conn.raw.is_closed():
            sync.script("ROLLBACK")


def _ping(conn: SyncConnection) -> None:
    conn.execute("SELECT 1")


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
