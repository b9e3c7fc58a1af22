"""SQLite plumbing: one writer thread with group commit, a pool of reader threads.

Why one writer: SQLite admits one writer at a time anyway; a single thread that owns the
write connection turns contention into a queue, and lets many callers share one transaction
and one fsync (group commit). While a commit is on its way to disk, new jobs queue up; the
next batch takes all of them. Each job runs inside its own SAVEPOINT so that one job's
refusal (a domain error) rolls back only that job.

WAL mode lets readers run beside the writer on their own connections, each seeing the last
committed state.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pigeon.protocol.errors import PigeonError, Unavailable

from .migrations import migrate

log = logging.getLogger("pigeon.store")

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]
_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss,
    # not only a process crash (NORMAL would only guarantee the latter in WAL mode).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA cache_size=-32000")
    return conn


class CommitStats:
    """Counters the metrics endpoint reads; written by the writer thread only."""

    def __init__(self) -> None:
        self.batches = 0
        self.jobs = 0
        self.last_batch = 0
        self.commit_seconds = 0.0


class SqliteEngine:
    def __init__(self, path: Path, max_batch: int = 512, readers: int = 4) -> None:
        self.path = path
        self.max_batch = max_batch
        self.stats = CommitStats()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="pigeon-read")
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._closed = False

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = await asyncio.to_thread(self._open_writer)
        self._thread = threading.Thread(
            target=self._run_writer, args=(conn,), name="pigeon-writer", daemon=True
        )
        self._thread.start()

    def _open_writer(self) -> sqlite3.Connection:
        conn = connect(self.path)
        migrate(conn)
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()

    # -- writes -----------------------------------------------------------------------------
    def write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(conn, *args)``; the future resolves after the batch is durable."""
        assert self._loop is not None, "store is not open"
        if self._closed:
            raise Unavailable("the store is shutting down", code="SHUTTING_DOWN")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, args, fut))
        return fut

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[Job] = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True  # finish this batch first: it holds acknowledged-to-be work
                    break
                batch.append(job)
            self._commit_batch(conn, batch)
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, args, fut in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn, *args)
                except Exception as exc:  # noqa: BLE001 - goes back to that job's caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((fut, None, _translate(exc)))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((fut, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("commit of %d jobs failed: %s", len(batch), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = Unavailable(f"storage failed: {exc}", code="STORAGE_FAILED")
            outcomes = [(fut, None, failure) for _, _, fut in batch]
        stats = self.stats
        stats.batches += 1
        stats.jobs += len(batch)
        stats.last_batch = len(batch)
        stats.commit_seconds += time.perf_counter() - started
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(settle, outcomes)
        except RuntimeError:  # the loop is gone (interpreter shutdown): nobody to answer
            pass

    # -- reads ------------------------------------------------------------------------------
    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None, "store is not open"
        return await self._loop.run_in_executor(self._readers, self._read, fn, args)

    def _read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        # One read transaction per query, so that its statements see one snapshot: in
        # autocommit each SELECT would see its own, and a difference could carry updates
        # newer than the state it reports (tests/contract: never_runs_ahead_of_its_state).
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn, *args)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc


def settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Answer a committed batch's callers, on the loop (PostgreSQL's engine too): one whose
    future is done already (cancelled: it stopped waiting) is skipped."""
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
    if isinstance(exc, sqlite3.Error):
        log.error("storage error: %s", exc)
        return Unavailable(f"storage failed: {exc}", code="STORAGE_FAILED")
    log.exception("internal error in a store job", exc_info=exc)
    return PigeonError("internal error")
