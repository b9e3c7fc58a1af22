"""A nats-server of its own, on a free loopback port, for tests and benchmarks (issue 12).

Started from the ``nats-server`` binary (Debian's package: /usr/sbin/nats-server); killed on
exit. Tests wrap it with their skip-or-fail rule (tests/integration/nats_support.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
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
    """``port`` None: the server picks a free port itself (``-p -1``) and writes it to a ports
    file, read at start. A port chosen beforehand by :func:`free_port` could be taken by
    another process (another test worker's server, or any outgoing connection) before
    nats-server binds it, and the test would then talk to a server that is not its own. A
    restart (``start`` again) keeps the port the first start got."""

    def __init__(self, port: int | None = None, binary: str | None = None) -> None:
        self.port = port or 0
        self.binary = binary or find_binary()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 10.0) -> None:
        if self.binary is None:
            raise RuntimeError("nats-server is not installed")
        with tempfile.TemporaryDirectory(prefix="pigeon-nats-") as ports_dir:
            self._process = subprocess.Popen(
                [*self.command(), "--ports_file_dir", ports_dir],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            # The ports file is written once the listener is bound: the server is ready.
            ports_file = Path(ports_dir) / f"{Path(self.binary).name}_{self._process.pid}.ports"
            while time.monotonic() < deadline and self._process.poll() is None:
                if ports_file.exists() and (port := _client_port(ports_file)):
                    self.port = port
                    return
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"nats-server did not start (port {self.port or 'any'})")

    def command(self) -> list[str]:
        assert self.binary is not None
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port or -1)]

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def _client_port(ports_file: Path) -> int | None:
    """The client port in nats-server's ports file ({"nats": ["nats://127.0.0.1:PORT"]});
    None while the file is still being written."""
    try:
        urls = json.loads(ports_file.read_text())["nats"]
    except (OSError, ValueError, KeyError):
        return None
    return int(urls[0].rsplit(":", 1)[1]) if urls else None


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
                f"host: 127.0.0.1\nport: {self.port or -1}\n"
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
