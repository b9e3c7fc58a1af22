"""What `pigeon admin backup` costs a running server: send latency before and during backups.

    python bench/backup_under_load.py [--messages 20000] [--senders 4] [--seconds 3]

Starts a real server (SQLite in a temporary directory), fills it with --messages private
messages, then has --senders devices send one message at a time (each waits for its
acknowledgement, which follows the fsync) for --seconds without a backup and for --seconds
while backups run back to back through the operator listener. Prints the acknowledged sends
per second and p50/p99 latency of both phases, and each backup's duration and size. Not a
test: figures vary with the machine and its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon.cli.operator import call  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402


async def phase(clients, chats, seconds: float) -> list[float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def send(i: int) -> None:
        while time.monotonic() < end:
            start = time.monotonic()
            await clients[i].messages.send(chats[i], "measure")
            latencies.append(time.monotonic() - start)

    await asyncio.gather(*(send(i) for i in range(len(clients))))
    return latencies


def summary(name: str, latencies: list[float], seconds: float) -> str:
    q = statistics.quantiles(latencies, n=100)
    return (f"{name}: {len(latencies) / seconds:.0f} sends/s, p50 {q[49] * 1000:.1f} ms, "
            f"p99 {q[98] * 1000:.1f} ms")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "data") as server:
        clients = [await login(server, f"+49151990{i:05d}", f"S{i}") for i in range(args.senders)]
        chats = [(await c.chats.open_private(clients[(i + 1) % len(clients)].profile.user_id)).id
                 for i, c in enumerate(clients)]
        per = args.messages // args.senders

        async def fill(i: int) -> None:
            for n in range(per):
                await clients[i].messages.send(chats[i], f"filler {n} " + "x" * 100)

        await asyncio.gather(*(fill(i) for i in range(args.senders)))
        quiet = await phase(clients, chats, args.seconds)
        backups: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def back_up() -> None:
            n = 0
            while not stop.is_set():
                start = time.monotonic()
                done = await call(server.operator_url, None, "/admin/backup",
                                  body={"path": f"{tmp}/b{n}.db"}, timeout=600)
                backups.append((time.monotonic() - start, done["bytes"]))
                n += 1

        task = asyncio.create_task(back_up())
        busy = await phase(clients, chats, args.seconds)
        stop.set()
        await task
        print(summary("without backup", quiet, args.seconds))
        print(summary("during backups", busy, args.seconds))
        for seconds, size in backups:
            print(f"backup: {size / 1e6:.1f} MB in {seconds * 1000:.0f} ms")
        for c in clients:
            await c.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args()))
