"""Two regions on loopback, for tests and benchmarks (issue 12, deliverable 6): per region a
PostgreSQL database (given), a nats-server with JetStream (pigeon.testing_nats.GatewayNode),
the two joined by a gateway, and one `pigeon serve` (pigeon.testing.ServerProcess). Region
"a" homes +49 (and every code not listed), region "b" homes +44."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp

from .testing import ServerProcess
from .testing_nats import GatewayNode, free_port, running_regions

CALLING_CODES = {"a": [49], "b": [44]}


class RegionNode:
    def __init__(self, name: str, nats_server: GatewayNode, database: str, table: Path,
                 data: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.database = database
        self.nats = nats_server
        self.node = ServerProcess(data, "--store", database, "--bus", nats_server.url,
                                  "--region", name, "--regions", str(table), "--workers", "1",
                                  env=env)
        self.node.port = port

    @property
    def endpoint(self) -> str:
        return f"ws://127.0.0.1:{self.node.port}/v1/ws"

    async def health(self) -> dict[str, object]:
        """The operator listener's /healthz (with its ``regions`` part)."""
        async with aiohttp.ClientSession() as http, \
                http.get(f"{self.node.operator_url}/healthz") as response:
            body: dict[str, object] = await response.json()
            return body


def write_table(path: Path, ports: list[int]) -> Path:
    """The region table of regions a and b (a the default), their nodes on ``ports``."""
    path.write_text(json.dumps({"regions": [
        {"name": name, "index": i, "endpoints": [f"ws://127.0.0.1:{ports[i]}/v1/ws"],
         "calling_codes": CALLING_CODES[name], "default": i == 0}
        for i, name in enumerate(("a", "b"))]}))
    return path


@contextmanager
def running_two_regions(directory: Path, databases: list[str],
                        env: dict[str, str] | None = None) -> Iterator[
        tuple[RegionNode, RegionNode]]:
    """Regions a and b, each its node started (``env``: settings of both); everything
    killed on exit."""
    ports = [free_port(), free_port()]
    table = write_table(directory / "regions.json", ports)
    with running_regions(directory, "a", "b") as (nats_a, nats_b), ExitStack() as stack:
        pair = (RegionNode("a", nats_a, databases[0], table, directory / "a", ports[0], env),
                RegionNode("b", nats_b, databases[1], table, directory / "b", ports[1], env))
        for region in pair:
            stack.enter_context(region.node)
        yield pair


async def outbox_depth(database: str) -> int:
    """Rows waiting in a region's outbox (its PostgreSQL database's URL)."""
    import asyncpg  # noqa: PLC0415  (PostgreSQL only where regions are)

    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM region_outbox"))
    finally:
        await conn.close()
