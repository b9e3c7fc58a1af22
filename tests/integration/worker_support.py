"""Which worker of a ``pigeon serve --workers N`` holds a connection (by its source address)."""

from __future__ import annotations

import asyncio
import time

import psutil

from pigeon.testing import ServerProcess

__all__ = ["worker_of", "workers", "workers_listening"]


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


async def workers_listening(server: ServerProcess, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` workers of ``server`` said they listen (each logs it once)."""
    deadline = time.monotonic() + timeout
    while sum("listening on" in line for line in server.log) < count:
        assert time.monotonic() < deadline, "".join(server.log[-20:])
        await asyncio.sleep(0.05)
