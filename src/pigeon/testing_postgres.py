"""Test databases on a PostgreSQL server, each test its own, created cheaply from a template.

Creating a database, even from a template, costs PostgreSQL most of a second (it copies and
WAL-logs some 8 MB of catalogs); property tests open a store per example. So a test process
keeps the databases it created: :func:`lease_database` hands out one that no other test
holds, emptied (every row deleted, every identity restarted: the same state as a fresh copy, in a
few milliseconds), :func:`return_database` takes it back, and :func:`drop_leased` drops them all
when the session ends. Databases left by a test process that died are dropped by the next.

The server is the machine's (``127.0.0.1:5432``, trust auth) unless ``PIGEON_TEST_POSTGRES``
names another admin URL. A template database is migrated once per schema (its name carries a
digest of the migrations, so a new migration gets a new template) and each test's database
is ``CREATE DATABASE ... TEMPLATE`` of it: a copy of files, no migrations to run. Test
databases are dropped when the test ends. Without a server, tests skip; under ``CI=true``
they fail, so that CI cannot pass by skipping them.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pigeon.store.migrations import MIGRATIONS

ADMIN_URL = os.environ.get("PIGEON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
_TEMPLATE_LOCK = 0x5049_4754_4D50
_names = itertools.count(1)
_template_ready: set[str] = set()


def url_for(database: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def template_name() -> str:
    digest = hashlib.sha256("\x00".join(MIGRATIONS).encode()).hexdigest()[:12]
    return f"pigeon_template_{digest}"


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(ADMIN_URL, timeout=3)


async def unavailable_reason() -> str | None:
    try:
        conn = await _admin()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"no PostgreSQL at {ADMIN_URL}: {exc}"
    await conn.close()
    return None


async def require_postgres() -> None:
    """Skip the calling test without a server, or fail it under CI=true."""
    import pytest

    reason = await unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
    pytest.skip(reason)


async def _ensure_template(admin: asyncpg.Connection) -> str:
    name = template_name()
    if name in _template_ready:
        return name
    # Several test processes may start at once: one builds the template, the others wait.
    await admin.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            building = f"{name}_building_{os.getpid()}"
            await admin.execute(f'DROP DATABASE IF EXISTS "{building}"')
            await admin.execute(f'CREATE DATABASE "{building}"')
            from pigeon.store.postgres_conn import connect
            from pigeon.store.postgres_engine import migrate

            conn = await connect(url_for(building))
            try:
                await migrate(conn)
            finally:
                await conn.raw.close()
            await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
    _template_ready.add(name)
    return name


async def create_database() -> str:
    """A fresh, migrated, empty database; returns its name (see :func:`url_for`)."""
    admin = await _admin()
    try:
        template = await _ensure_template(admin)
        name = f"pigeon_test_{os.getpid()}_{next(_names)}_{uuid.uuid4().hex[:6]}"
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name
    finally:
        await admin.close()


_free: list[str] = []
_created: list[str] = []


async def lease_database() -> str:
    """A migrated, empty database no other test holds (see the module's doc)."""
    if _free:
        return _free.pop()
    if not _created:
        await _drop_orphans()
    name = await create_database()
    # Tests check behaviour, not the disk: a commit that waits for no WAL flush makes their
    # thousands of one-job transactions several times faster. Sessions opened later take it;
    # PostgreSQL crashing is not what they test (a test that kills Pigeon still finds every
    # acknowledged write: PostgreSQL itself kept running). Servers and the bench keep `on`.
    admin = await _admin()
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await admin.close()
    _created.append(name)
    return name


async def return_database(name: str) -> None:
    """Empty it, and keep it for the next test (the store on it must be closed). DELETE,
    not TRUNCATE: on tables this small it is ten times faster (TRUNCATE makes new files)."""
    conn = await asyncpg.connect(url_for(name), timeout=3)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                  "AND tablename != 'pigeon_schema'")
        sequences = await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
        await conn.execute("BEGIN; " + "".join(f'DELETE FROM "{t[0]}"; ' for t in tables)
                           + "".join(f'ALTER SEQUENCE "{q[0]}" RESTART; ' for q in sequences)
                           + "COMMIT")
    finally:
        await conn.close()
    _free.append(name)


async def drop_leased() -> None:
    names = list(_created)
    _created.clear()
    _free.clear()
    for name in names:
        await drop_database(name)


async def _drop_orphans() -> None:
    """Test databases of processes on this machine that are gone (killed mid-run)."""
    admin = await _admin()
    try:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pigeon_test_%'")
    finally:
        await admin.close()
    for (name,) in rows:
        pid = name.split("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            await drop_database(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def drop_database(name: str) -> None:
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
