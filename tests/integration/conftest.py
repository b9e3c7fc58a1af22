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
