"""Fixtures of the Store contract suite: every test here runs once per backend.

To add a backend, write an opener below and put its name in ``BACKENDS``; the tests use
only the :class:`pigeon.store.Store` interface, so they run unchanged. An opener receives
the test's ``request`` (to reach fixtures such as a database server started on port 0)
and a fresh directory, and returns an opened, empty store.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from contract_support import StoreFactory

from pigeon import testing_postgres as pg
from pigeon.store import SqliteStore, Store

Opener = Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]


async def open_sqlite(request: pytest.FixtureRequest, directory: Path) -> Store:
    store = SqliteStore(directory / "pigeon.db")
    await store.open()
    return store


async def open_postgres(request: pytest.FixtureRequest, directory: Path) -> Store:
    """A database of its own, migrated and empty (testing_postgres: copied from a template,
    emptied and reused by the next test of this process, dropped when the session ends)."""
    from pigeon.store.postgres import PostgresStore

    await pg.require_postgres()
    name = await pg.lease_database()
    # Two writers, not the default one: every operation then also runs beside another
    # writer's batches, as it does across processes (lock hints, deadlock retries).
    store = PostgresStore(pg.url_for(name), readers=2, writers=2)
    close = store.close

    async def close_and_drop() -> None:
        try:
            await close()
        finally:
            await pg.return_database(name)

    store.close = close_and_drop  # type: ignore[method-assign]
    await store.open()
    return store


OPENERS: dict[str, Opener] = {
    "sqlite": open_sqlite,
    "postgres": open_postgres,
}
BACKENDS = list(OPENERS)


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases() -> Iterator[None]:
    yield
    asyncio.run(pg.drop_leased())


@pytest.fixture(params=BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Opens any number of fresh, empty stores of one backend (property tests need one per
    example); each is closed when its ``async with`` block ends."""
    opener = OPENERS[request.param]
    counter = itertools.count()

    @asynccontextmanager
    async def fresh() -> AsyncIterator[Store]:
        directory = tmp_path / f"store-{next(counter)}"
        directory.mkdir()
        store = await opener(request, directory)
        try:
            yield store
        finally:
            await store.close()

    return fresh


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    async with store_factory() as opened:
        yield opened
