"""`pigeon serve --workers N`: a supervisor that restarts a worker killed with -9, passes
SIGTERM on, and whose workers do not outlive it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pigeon.testing import ServerProcess, login


def workers_of(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    return [p for p in psutil.Process(server.proc.pid).children()
            if "resource_tracker" not in " ".join(p.cmdline())]


def wait_for(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def test_more_workers_than_one_need_a_shared_store_and_bus(tmp_path: Path) -> None:
    for extra, why in ((["--workers", "2"], "needs a bus that processes share"),
                       (["--workers", "2", "--bus", "nats://127.0.0.1:4222"],
                        "needs a store that processes share")):
        result = subprocess.run(
            [sys.executable, "-m", "pigeon", "serve", "--data", str(tmp_path / "d"),
             "--listen", "127.0.0.1:0", *extra], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and why in result.stderr


async def test_a_worker_killed_with_9_is_restarted_and_nothing_is_lost(tmp_path: Path,
                                                                       phone) -> None:
    with ServerProcess(tmp_path / "data", "--workers", "1") as server:
        assert any("1 workers on 127.0.0.1:" in line for line in server.log)
        alice = await login(server, phone(), "Alice", username="alice_w")
        bob = await login(server, phone(), "Bob", username="bob_w")
        found = await alice.account.resolve_username("@bob_w")
        chat = await alice.chats.open_private(found.id)
        await alice.messages.send(chat.id, "before the crash")
        [worker] = workers_of(server)
        worker.kill()
        wait_for(lambda: any(re.search(r"worker 0 \(pid \d+\) exited with -9", line)
                             for line in server.log), "the supervisor saw the death")
        wait_for(lambda: len(workers_of(server)) == 1 and workers_of(server)[0].pid
                 != worker.pid, "a new worker")
        wait_for(lambda: sum("listening on" in line for line in server.log) == 2,
                 "the new worker listens")
        try:
            await alice.messages.send(chat.id, "after the crash")  # the SDK reconnects
            page = await bob.messages.history(chat.id)
            assert [m.text for m in page] == ["after the crash", "before the crash"]
        finally:
            await alice.close()
            await bob.close()
        assert server.stop() == 0
        assert server.log[-1].strip() == "pigeon supervisor stopped"
        assert any("pigeon stopped cleanly" in line for line in server.log)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", "--workers", "1") as server:
        [worker] = workers_of(server)
        assert server.proc is not None
        server.proc.kill()  # the supervisor alone (ServerProcess.kill takes the workers too)
        server.proc.wait()
        wait_for(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE,
                 "the orphaned worker stopped")
    # and the port and directory are free again for a new server
    with ServerProcess(tmp_path / "data") as again:
        assert again.port


