"""A nats-server of its own, on a free loopback port, for tests and benchmarks (issue 12).

Started from the ``nats-server`` binary (Debian's package: /usr/sbin/nats-server); killed on
exit. Tests wrap it with their skip-or-fail rule (tests/integration/nats_support.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def find_binary() -> str | None:
    found = shutil.which("nats-server")
    if found is None and os.path.exists("/usr/sbin/nats-server"):
        found = "/usr/sbin/nats-server"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.binary = binary or find_binary()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self.binary is None:
            raise RuntimeError("nats-server is not installed")
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"nats-server did not listen on {self.port}")

    def command(self) -> list[str]:
        assert self.binary is not None
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port)]

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@contextmanager
def running_nats() -> Iterator[NatsServer]:
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


class GatewayNode(NatsServer):
    """One region's nats-server: JetStream (its store in ``directory``, kept across restarts),
    a cluster of one named as the region, and a gateway to the other regions' servers
    (``connect(...)`` before ``start()``). docs/operations.md, "Regions", has the same
    configuration for real deployments."""

    def __init__(self, name: str, directory: Path, binary: str | None = None) -> None:
        super().__init__(binary=binary)
        self.name = name
        self.directory = directory
        self.cluster_port = free_port()
        self.gateway_port = free_port()
        self.gateways: dict[str, int] = {name: self.gateway_port}

    def connect(self, *others: GatewayNode) -> None:
        for other in others:
            self.gateways[other.name] = other.gateway_port

    def config(self) -> str:
        # JetStream with a gateway runs clustered, and a cluster needs a route: a single
        # server's route to itself (nats-server drops the duplicate) is the smallest one.
        gateways = ", ".join(f'{{name: "{n}", url: "nats://127.0.0.1:{p}"}}'
                             for n, p in sorted(self.gateways.items()))
        return (f'server_name: "{self.name}-1"\n'
                f"listen: 127.0.0.1:{self.port}\n"
                f'jetstream {{ store_dir: "{self.directory / "jetstream"}" }}\n'
                f'cluster {{ name: "{self.name}", listen: "127.0.0.1:{self.cluster_port}", '
                f'routes: ["nats://127.0.0.1:{self.cluster_port}"] }}\n'
                f'gateway {{ name: "{self.name}", listen: "127.0.0.1:{self.gateway_port}", '
                f"gateways: [{gateways}] }}\n")

    def command(self) -> list[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "nats.conf"
        path.write_text(self.config())
        assert self.binary is not None
        return [self.binary, "-c", str(path)]


@contextmanager
def running_regions(directory: Path, *names: str) -> Iterator[list[GatewayNode]]:
    """One nats-server per region, all joined by gateways; killed on exit."""
    nodes = [GatewayNode(name, directory / f"nats-{name}") for name in names]
    for node in nodes:
        node.connect(*nodes)
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.kill()
