"""``pigeon serve --workers N``: N server processes on one port, and one supervisor.

Python runs one core per process; a machine's other cores serve through more processes.
Each worker is a whole server (its own event loop, connections and shield fast path) that
listens on the same address with ``SO_REUSEPORT``, so the kernel spreads new connections
over them. They share the store (PostgreSQL: one SQLite file has one writer) and reach each
other's devices through the bus (NATS); settings.py refuses more than one worker otherwise.

The supervisor holds the data directory's lock, makes the server secret before any worker
starts (so that they cannot race to create two), starts the workers as fresh interpreters
(``spawn``: never a fork of a process with threads), and restarts one that dies, with a
growing delay if it keeps dying. SIGTERM or SIGINT is passed on to every worker at once (from
the signal handler: the supervisor's loop may be in a wait of up to a second), which each
stop as one server does (the bounded stop: calls in flight answered within
stop_drain_seconds, the going-away notice, the process ended), and the supervisor exits as
soon as they have, killing any that outlives the stop's bound (issue 13).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from types import FrameType

from .datadir import lock_data_dir, prepare_data_dir, private_umask
from .restart_times import process_age
from .services import load_or_create_secret
from .settings import Settings, split_listen

log = logging.getLogger("pigeon.server.workers")

#: a worker that dies sooner than this after its start counts as crashing on start; the
#: supervisor then waits longer before each new try (up to RESTART_DELAY_MAX)
HEALTHY_AFTER = 10.0
RESTART_DELAY, RESTART_DELAY_MAX = 0.5, 30.0
#: how long the workers have to stop after SIGTERM before they are killed, past the bounded
#: parts of their stop (stop_drain_seconds, twice stop_close_seconds): the store's close
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Worker:
    """What a worker process is told: which one it is, and that the supervisor holds the
    data directory (so it must not take the lock itself)."""

    index: int
    count: int
    #: time.time() the supervisor began, for a worker of its first start: a restart's start
    #: is measured from there (restart_times.py); None for one started again after a crash
    started: float | None = None


def supervise(settings: Settings) -> int:
    """Run ``settings.workers`` workers until SIGTERM or SIGINT; returns the exit status."""
    private_umask()
    prepare_data_dir(settings.data, allow_shared=settings.allow_shared_data_dir)
    lock = lock_data_dir(settings.data)
    try:
        load_or_create_secret(settings.data)
        try:
            holder, settings = _reserve_port(settings)
        except OSError as exc:
            from .app import CannotListen

            raise CannotListen(f"cannot listen on {settings.listen}: "
                               f"{os.strerror(exc.errno) if exc.errno else exc}") from None
        try:
            return _Supervisor(settings).run()
        finally:
            holder.close()
    finally:
        os.close(lock)


def _reserve_port(settings: Settings) -> tuple[socket.socket, Settings]:
    """Listening on port 0, the workers must all take the same port: the supervisor binds
    one (with SO_REUSEPORT, never listening, so the kernel hands it no connection) and keeps
    it for as long as it runs, so that a restarted worker finds it still free."""
    host, port = split_listen(settings.listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    bound = holder.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return holder, replace(settings, listen=f"{shown}:{bound}")


def _operator_for(settings: Settings, index: int) -> Settings:
    """Each worker has its own operator listener (its own /metrics): at the configured port
    plus its index, or a free port of its own when the configured port is 0."""
    if not settings.operator_enabled:
        return settings
    host, port = split_listen(settings.operator_listen, "operator_listen")
    if port == 0:
        return settings
    shown = f"[{host}]" if ":" in host else host
    return replace(settings, operator_listen=f"{shown}:{port + index}")


def _run_worker(settings: Settings, worker: Worker) -> None:
    """The body of one worker process."""
    from .logs import configure as configure_logs

    configure_logs(settings.log_level,
                   f"%(asctime)s %(levelname)s w{worker.index} %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    _stop_when_orphaned()
    from pigeon.runtime import run

    from .app import serve

    try:
        # Once stopped, the worker's process ends at once, as `pigeon serve` does (app.py).
        run(serve(settings, worker=worker, exit_process=True))
    except Exception as exc:  # one line, as `pigeon serve` prints; the supervisor restarts
        print(f"error: worker {worker.index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _stop_when_orphaned() -> None:
    """A supervisor killed with SIGKILL cannot stop its workers: each stops itself (cleanly,
    through its own SIGTERM handler) once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


class _Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.workers
        self.context = multiprocessing.get_context("spawn")
        self.procs: dict[int, BaseProcess] = {}
        self.started: dict[int, float] = {}
        self.delay: dict[int, float] = {}
        self.stopping = False
        self.restarts = 0
        self.began = time.time() - (process_age() or 0.0)  # its interpreter's start counts
        # Written by the signal handler, so that the loop's wait ends at once.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    def _start(self, index: int) -> None:
        # A first start's workers measure their start from the supervisor's (restart_times).
        first = index not in self.started
        proc = self.context.Process(
            target=_run_worker, name=f"pigeon-worker-{index}",
            args=(_operator_for(self.settings, index),
                  Worker(index, self.count, self.began if first else None)))
        proc.start()
        self.procs[index] = proc
        self.started[index] = time.monotonic()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            self._forward(signal.SIGTERM)
        with suppress(OSError):  # full: a wake-up is already waiting
            os.write(self._wake_write, b"\0")

    def _forward(self, signum: int) -> None:
        for proc in list(self.procs.values()):
            if proc.pid is not None and proc.exitcode is None:
                with suppress(ProcessLookupError):
                    os.kill(proc.pid, signum)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        print(f"pigeon supervisor (pid {os.getpid()}): {self.count} workers on "
              f"{self.settings.listen}", file=sys.stderr, flush=True)
        for index in range(self.count):
            self._start(index)
        due: dict[int, float] = {}  # worker index -> when to start it again
        while not self.stopping:
            sentinels = [p.sentinel for p in self.procs.values()]
            timeout = max(0.0, min(due.values()) - time.monotonic()) if due else 1.0
            multiprocessing.connection.wait([*sentinels, self._wake_read],
                                            timeout=min(timeout, 1.0))
            if self.stopping:
                break
            for index, proc in list(self.procs.items()):
                if proc.is_alive():
                    continue
                del self.procs[index]
                lived = time.monotonic() - self.started[index]
                delay = RESTART_DELAY if lived >= HEALTHY_AFTER else min(
                    RESTART_DELAY_MAX, self.delay.get(index, RESTART_DELAY / 2) * 2)
                self.delay[index] = delay
                print(f"pigeon supervisor: worker {index} (pid {proc.pid}) exited with "
                      f"{proc.exitcode}; restarting it in {delay:.1f} s",
                      file=sys.stderr, flush=True)
                due[index] = time.monotonic() + delay
            for index, when in list(due.items()):
                if when <= time.monotonic():
                    del due[index]
                    self.restarts += 1
                    self._start(index)
        return self._shutdown()

    def _shutdown(self) -> int:
        procs = list(self.procs.values())
        self._forward(signal.SIGTERM)  # again: one started while the signal came
        settings = self.settings
        deadline = (time.monotonic() + settings.stop_drain_seconds
                    + 2 * settings.stop_close_seconds + STOP_GRACE)
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                print(f"pigeon supervisor: {proc.name} (pid {proc.pid}) did not stop in time; "
                      "killing it", file=sys.stderr, flush=True)
                proc.kill()
                proc.join()
        print("pigeon supervisor stopped", file=sys.stderr, flush=True)
        return 0
