"""CPU and memory of the server (and of the siege's own processes), sampled once a second.

The harness shares the machine with the server: its own CPU is reported beside the
server's, so a reader can tell a starved server from a starved harness.
"""

from __future__ import annotations

from collections.abc import Callable

import psutil  # type: ignore[import-untyped, unused-ignore]


class ProcessSampler:
    """``cpu_percent`` since the previous sample (100 = one core) and RSS in MiB, of the
    process whose pid ``pid`` returns now (the server's pid changes when it restarts)."""

    def __init__(self, pid: Callable[[], int | None]) -> None:
        self._pid = pid
        self._proc: psutil.Process | None = None

    def _process(self) -> psutil.Process | None:
        pid = self._pid()
        if pid is None:
            return None
        if self._proc is None or self._proc.pid != pid:
            try:
                self._proc = psutil.Process(pid)
                self._proc.cpu_percent(None)  # the first call only sets the reference point
            except psutil.Error:
                self._proc = None
        return self._proc

    def prime(self) -> None:
        self._process()

    def sample(self) -> dict[str, float | None]:
        proc = self._process()
        if proc is None:
            return {"cpu_percent": None, "rss_mb": None}
        try:
            with proc.oneshot():
                cpu = proc.cpu_percent(None)
                rss = proc.memory_info().rss / (1 << 20)
        except psutil.Error:
            self._proc = None
            return {"cpu_percent": None, "rss_mb": None}
        return {"cpu_percent": round(cpu, 1), "rss_mb": round(rss, 1)}


def machine_cpu_percent() -> float:
    """CPU use of the whole machine since the last call, 100 = every core busy."""
    return float(psutil.cpu_percent(None))


def find_listener(port: int) -> int | None:
    """The pid of the process listening on ``port`` on this machine, if we may see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid is not None else None
    except psutil.Error:
        return None
    return None
