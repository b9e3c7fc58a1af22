"""Tests of what only the PostgreSQL store has: its dialect layer, writers in several
processes, a server that goes away. Each test gets a database of its own (testing_postgres);
without a server they skip, under CI=true they fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from pigeon import testing_postgres as pg


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_databases() -> Iterator[None]:
    yield
    asyncio.run(pg.drop_leased())


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    await pg.require_postgres()
    name = await pg.lease_database()
    try:
        yield pg.url_for(name)
    finally:
        await pg.return_database(name)
