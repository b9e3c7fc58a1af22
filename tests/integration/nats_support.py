"""A nats-server of the test's own (pigeon.testing_nats), killed at the end.

Under ``CI=true`` a missing ``nats-server`` fails the test instead of skipping it: CI
machines have it, so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import nats
import pytest

from pigeon.testing_nats import NatsServer as _NatsServer
from pigeon.testing_nats import find_binary, free_port

__all__ = ["NatsServer", "free_port", "nats_binary", "nats_client", "nats_server"]


def nats_binary() -> str:
    found = find_binary()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nats-server is not installed (CI must have it)")
        pytest.skip("nats-server is not installed")
    return found


class NatsServer(_NatsServer):
    def __init__(self, directory: Path, port: int | None = None) -> None:
        super().__init__(port, nats_binary())


@contextmanager
def nats_server(directory: Path) -> Iterator[NatsServer]:
    server = NatsServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[nats.NATS]:
    """A NATS connection of the test's own (to publish junk, to ask as a region would)."""
    client = await nats.connect(url)
    try:
        yield client
    finally:
        await client.close()
