"""Which worker of a ``pigeon serve --workers N`` holds a connection (by its source address)."""

from __future__ import annotations

import psutil

from pigeon.testing import ServerProcess

__all__ = ["worker_of", "workers"]


def workers(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    return [p for p in psutil.Process(server.proc.pid).children()
            if "resource_tracker" not in " ".join(p.cmdline())]


def worker_of(server: ServerProcess, address: str) -> int | None:
    """Which worker (its pid) holds a connection from this loopback address."""
    for proc in workers(server):
        for conn in proc.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.ip == address and conn.laddr.port == server.port:
                return proc.pid
    return None
