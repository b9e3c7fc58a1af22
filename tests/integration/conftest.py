import pytest
from plaintext_scan import proxied  # noqa: F401 (the server behind a recording proxy)

from pigeon.testing import ServerProcess


@pytest.fixture
def server(tmp_path):
    with ServerProcess(tmp_path / "data") as proc:
        yield proc


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("shared") / "data") as proc:
        yield proc


@pytest.fixture
async def database():
    """A fresh PostgreSQL database's URL (a copy of a migrated template), dropped after;
    skipped without PostgreSQL, failed under CI=true (pigeon.testing_postgres)."""
    from pigeon import testing_postgres as pg

    await pg.require_postgres()
    name = await pg.create_database()
    try:
        yield pg.url_for(name)
    finally:
        await pg.drop_database(name)


@pytest.fixture(scope="module")
def region_env() -> dict[str, str] | None:
    """Settings of both regions' nodes (a module may override this fixture)."""
    return None


@pytest.fixture(scope="module")
def regions(tmp_path_factory, region_env):
    """Two regions on loopback (pigeon.testing_regions), each with its own PostgreSQL
    database and nats-server, joined by a gateway; shared by a module's tests."""
    import asyncio

    from nats_support import nats_binary

    from pigeon import testing_postgres as pg
    from pigeon.testing_regions import running_two_regions

    nats_binary()  # skip (or fail under CI) without nats-server
    asyncio.run(pg.require_postgres())
    names = [asyncio.run(pg.create_database()) for _ in range(2)]
    try:
        with running_two_regions(tmp_path_factory.mktemp("regions"),
                                 [pg.url_for(name) for name in names],
                                 region_env) as pair:
            yield pair
    finally:
        for name in names:
            asyncio.run(pg.drop_database(name))
