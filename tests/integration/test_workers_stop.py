"""`pigeon serve --workers 2`, stopped with SIGTERM (issue 13): the supervisor passes the
signal on, each worker does the bounded stop of one server (the notice to each of its
devices, a deaf peer dropped rather than waited for, its process ended), and the supervisor
ends once they have, killing none."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest
from nats_support import nats_server
from test_stop_bounded import _deaf_peer
from worker_support import workers, workers_listening

from pigeon.server import restart_times
from pigeon.testing import ServerProcess, login

from raw_support import Raw

pytestmark = pytest.mark.slow

DEVICES = 6
QUICK = {"PIGEON_SLOW_CONSUMER_SECONDS": "600"}  # the deaf peer is the stop's to drop


async def test_sigterm_stops_every_worker_the_bounded_way(tmp_path: Path, phone,
                                                          database: str) -> None:
    with nats_server(tmp_path) as nats_srv, ServerProcess(
            tmp_path / "data", "--store", database, "--bus", nats_srv.url,
            "--workers", "2", env=QUICK) as server:
        await workers_listening(server, 2)
        pids = {p.pid for p in workers(server)}
        alice = await login(server, phone(), "Alice")
        bob = await login(server, phone(), "Bob")
        raws = [await Raw.open(server) for _ in range(DEVICES)]
        deaf: socket.socket | None = None
        try:
            group = await alice.chats.create_group("before the stop", [bob.profile.user_id])
            for i in range(60):
                await alice.messages.send(group.id, f"{i:04d}" + "x" * 3996)
            deaf = await asyncio.to_thread(_deaf_peer, server.port, alice.profile.token,
                                           group.id)
            for raw in raws:
                assert (await raw.hello(alice.profile.token))["t"] == "welcome"
            await asyncio.sleep(1.0)  # the deaf peer's answers fill its socket
            assert await asyncio.to_thread(server.stop, 60) == 0
            for raw in raws:
                await asyncio.wait_for(raw.closed.wait(), 30)
                assert raw.fatal is not None and raw.fatal["code"] == "SHUTTING_DOWN"
                assert raw.ws.close_code == 1001
        finally:
            if deaf is not None:
                deaf.close()
            for raw in raws:
                await raw.close()
            await alice.close()
            await bob.close()
        log = "".join(server.log)
        assert "did not stop in time" not in log, log[-3000:]
        # Each worker stopped the bounded way, and said how many it closed and dropped.
        closed = re.findall(r"w(\d) pigeon\.server: stop \+[\d.]+ s: connections closed: "
                            r"(\d+) with everything written, (\d+) dropped", log)
        assert sorted(w for w, _, _ in closed) == ["0", "1"], log[-3000:]
        assert sum(int(a) + int(b) for _, a, b in closed) >= DEVICES + 1
        assert sum(int(b) for _, _, b in closed) == 1  # the deaf peer: dropped, not waited for
        assert len(re.findall(r"w\d pigeon\.server: stop \+[\d.]+ s: store closed", log)) == 2
        # ... without unwinding its connections' handlers: its process ends instead.
        assert len(re.findall(r"w\d pigeon\.server: stop \+[\d.]+ s: handlers left to the "
                              r"process's exit", log)) == 2
        # The workers measured their start (from the supervisor's) and their stop.
        times = restart_times.read(tmp_path / "data")
        assert times.start is not None and times.stop is not None
        assert log.count("pigeon stopped cleanly") == 2
        assert server.log[-1].strip() == "pigeon supervisor stopped"
        assert server.proc is not None and server.proc.returncode == 0
        assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
