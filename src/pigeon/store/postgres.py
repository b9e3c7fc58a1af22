"""The PostgreSQL backend of the Store: for deployments of more than one process.

It runs the same operations as the SQLite backend (the ``_tx_*`` and ``_q_*`` functions of
:mod:`.sqlite` and its modules, which call the domain rules with the rows they read), on
:class:`.postgres_engine.PostgresEngine`: a pool of asyncpg connections, group commit of many
callers' jobs in one transaction, snapshot reads. SQLite's dialect is translated once per
statement (:mod:`.postgres_dialect`), so that one body of SQL serves both and the contract
suite holds both to the same behaviour. Nothing outside this package knows the difference.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any
from pathlib import Path
from urllib.parse import urlsplit

from pigeon.protocol.errors import InvalidArgument, Unavailable

from .base import StoreStats
from .postgres_dialect import redacted
from .postgres_bulk import send_in_bulk
from .postgres_engine import PostgresEngine
from .sqlite import SqliteStore
from .sqlite_messages import _tx_send_message

SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


class PostgresStore(SqliteStore):
    """``postgresql://USER@HOST:PORT/DB``; every operation is inherited (see module doc)."""

    def __init__(self, url: str, max_batch: int = 512, readers: int = 4,
                 writers: int = 1) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"not a postgresql:// URL: {redacted(url)}")
        self.url = url
        self.postgres = PostgresEngine(url, max_batch=max_batch, readers=readers,
                                       writers=writers, bulk={_tx_send_message: send_in_bulk})
        self.engine = self.postgres

    def stats(self) -> StoreStats:
        s = self.postgres.stats
        return StoreStats(commits=s.batches, writes=s.jobs, commit_seconds=s.commit_seconds,
                          last_batch=s.last_batch, connections=self.postgres.connections,
                          retried=s.retried, failed_batches=s.failed_batches,
                          together=s.together)

    async def ping(self) -> None:
        await self.postgres.ping()

    async def reserve_user_ids(self, first_id: int, last_id: int) -> None:
        """Move the users' and the chats' id sequences into this region's range (once;
        idempotent): rows of people homed elsewhere, and replicas of groups of other regions,
        are inserted with their own ids and never move them."""
        if first_id > 1:
            await self.engine.write(_tx_floor_ids, "users", first_id, last_id)
            await self.engine.write(_tx_floor_ids, "chats", first_id, last_id)
            # device ids too: an envelope or a claim names a device alone, so its id must
            # say its region (docs/architecture.md, "Secret chats across regions")
            await self.engine.write(_tx_floor_ids, "sessions", first_id, last_id)

    async def backup(self, target: str) -> None:
        """``pg_dump --format=custom`` into ``target`` (restore with ``pg_restore``): one
        consistent snapshot, taken while the store goes on serving. For continuous protection
        use PostgreSQL's own (a replica, WAL archiving): docs/operations.md."""
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise Unavailable("pg_dump is not installed on this machine", code="BACKUP_FAILED")
        path = Path(target)
        if path.exists():
            raise InvalidArgument(f"{target} exists already", code="BACKUP_EXISTS")
        partial = path.with_name(path.name + ".partial")
        proc = await asyncio.create_subprocess_exec(
            pg_dump, "--format=custom", "--no-password", f"--file={partial}", self.url,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            raise Unavailable(f"pg_dump failed: {err.decode(errors='replace').strip()[:500]}",
                              code="BACKUP_FAILED")
        os.replace(partial, path)


def _tx_floor_ids(conn: Any, table: str, first_id: int, last_id: int) -> None:
    assert table in ("users", "chats", "sessions")
    conn.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(CAST(?1 AS BIGINT) - 1, "
        f"(SELECT COALESCE(MAX(id), 0) FROM {table} WHERE id BETWEEN CAST(?1 AS BIGINT) AND "
        "CAST(?2 AS BIGINT))))", (first_id, last_id))
