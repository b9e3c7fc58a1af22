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
