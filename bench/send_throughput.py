"""Durable one-to-one messages per second, end to end, on each store, in one run.

    python bench/send_throughput.py [--pairs 50] [--window 16] [--seconds 10]
                                    [--stores sqlite,postgresql,postgresql-2]

For each store in --stores (sqlite: the embedded default; postgresql: a fresh database on the
server of PIGEON_TEST_POSTGRES, default 127.0.0.1:5432, dropped after; postgresql-2: the same
with ``--workers 2`` and a NATS bus, a nats-server of its own on a free port), starts a real
server (``pigeon serve`` on a free port, its data directory temporary) and,
in this process beside it, N senders that each message an online peer. A message counts
when the peer has received it: sent, committed durably (group commit, fsync), acknowledged,
pushed. Phase 1 finds the saturated rate (each sender keeps --window sends in flight);
phase 2 sends at half that rate, evenly paced, and reports p50/p99 latency from the call to
the peer's receipt. Phase 1 also reports the CPU time the server process, this process
(the clients) and, on PostgreSQL on this machine, its backends spent per delivered message,
which moves far less than the rate when other work shares the machine's cores. Not a test:
figures vary with the machine and its neighbours; run it a few times, alternating the
versions compared, and compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon import testing_postgres as pg  # noqa: E402
from pigeon.protocol.updates import NewMessage  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402
from pigeon.testing_nats import find_binary, running_nats  # noqa: E402


async def setup(server: ServerProcess, pairs: int):
    users = []
    for i in range(pairs * 2):
        users.append(await login(server, f"+4915{i // 10000 + 10}{i % 10000:07d}", f"u{i}"))
    chats = []
    for i in range(pairs):
        chats.append((await users[2 * i].chats.open_private(users[2 * i + 1].profile.user_id)).id)
    return users, chats


async def receiver(client, arrivals: dict[str, float]) -> None:
    me = client.profile.user_id
    async for update in client.updates():
        if isinstance(update, NewMessage) and update.message.sender_id != me:
            arrivals[update.message.text] = time.perf_counter()


async def saturate(users, chats, window: int, seconds: float, arrivals: dict[str, float]) -> float:
    stop = time.perf_counter() + seconds
    counter = 0

    async def lane(sender, chat_id: int, tag: str) -> None:
        nonlocal counter
        while time.perf_counter() < stop:
            counter += 1
            await sender.messages.send(chat_id, f"sat-{tag}-{counter}")

    start = time.perf_counter()
    base = len(arrivals)
    await asyncio.gather(*(lane(users[2 * i], chat, f"{i}.{w}")
                           for i, chat in enumerate(chats) for w in range(window)))
    await asyncio.sleep(0.5)  # let the last pushes land
    received = len(arrivals) - base
    return received / (time.perf_counter() - start - 0.5)


async def paced(users, chats, rate: float, seconds: float, arrivals: dict[str, float]):
    sent_at: dict[str, float] = {}
    per_lane = rate / len(chats)
    interval = 1.0 / per_lane

    async def lane(i: int, sender, chat_id: int) -> None:
        next_at = time.perf_counter() + interval * (i / len(chats))  # spread the lanes
        end = time.perf_counter() + seconds
        n = 0
        pending = set()
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            text = f"lat-{i}-{n}"
            n += 1
            sent_at[text] = time.perf_counter()
            task = asyncio.create_task(sender.messages.send(chat_id, text))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += interval
        if pending:
            await asyncio.gather(*pending)

    await asyncio.gather(*(lane(i, users[2 * i], chat) for i, chat in enumerate(chats)))
    await asyncio.sleep(1.0)
    latencies = sorted(arrivals[t] - sent_at[t] for t in sent_at if t in arrivals)
    lost = len(sent_at) - len(latencies)
    return latencies, lost, len(sent_at) / seconds


def _cpu_seconds(server: ServerProcess) -> float:
    """The server's CPU time: its process and, with --workers, every worker's."""
    assert server.proc is not None
    top = psutil.Process(server.proc.pid)
    total = 0.0
    for proc in [top, *top.children(recursive=True)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _postgres_cpu_seconds(database: str | None) -> float | None:
    """The CPU time of PostgreSQL's backends serving ``database`` (their process titles name
    it; None when they cannot be read, e.g. PostgreSQL on another machine). Backends that
    exit in between are missed: the server keeps its connections for the whole run."""
    if database is None:
        return None
    total, found = 0.0, False
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {database} " in title:
                times = proc.cpu_times()
                total += times.user + times.system
                found = True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total if found else None


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stores", default="sqlite,postgresql,postgresql-2",
                        help="comma-separated: sqlite, postgresql, postgresql-2 (two workers "
                             "and NATS) (default: all, in turn)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds in all (default: 6 x --seconds + 60)")
    args = parser.parse_args()
    timeout = args.timeout or 6 * args.seconds + 60
    for store in args.stores.split(","):
        if store not in ("sqlite", "postgresql", "postgresql-2"):
            sys.exit(f"unknown store {store!r}: sqlite, postgresql or postgresql-2")
        workers = 2 if store == "postgresql-2" else 1
        print(f"== {store} ({workers} worker{'s' if workers > 1 else ''})", flush=True)
        on_postgres = store.startswith("postgresql")
        if on_postgres and (reason := await pg.unavailable_reason()):
            print(f"skipped: {reason}")
            continue
        if workers > 1 and find_binary() is None:
            print("skipped: nats-server is not installed")
            continue
        database = await pg.create_database() if on_postgres else None
        try:
            async with asyncio.timeout(timeout):
                await measure(args, pg.url_for(database) if database else None, workers,
                              database)
        except TimeoutError:
            sys.exit(f"gave up after {timeout:.0f} s: the server stopped answering (see its log)")
        finally:
            if database:
                await pg.drop_database(database)


async def measure(args: argparse.Namespace, store_url: str | None, workers: int = 1,
                  database: str | None = None) -> None:
    # 50 accounts sending ~100 messages/s each would trip the per-account rate limits that
    # protect real users from spammers; this measures the durable path, so they are lifted.
    # So is the per-connection frame rate: above ~10,000 messages/s its refusals used to earn
    # the benchmark's own address a ban, and every connection was reset mid-run.
    # The shield's scheduling (classes, budgets, CoDel) stays on.
    lifted = {f"PIGEON_{name}": "1000000/1s burst 1000000"
              for name in ("RATE_SEND", "RATE_SESSION", "RATE_ACCOUNT", "RATE_FANOUT",
                           "FRAME_RATE")}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        extra: list[str] = ["--store", store_url] if store_url else []
        if workers > 1:
            nats = stack.enter_context(running_nats())
            extra += ["--workers", str(workers), "--bus", nats.url]
        server = stack.enter_context(ServerProcess(Path(tmp) / "data", *extra, env=lifted))
        while sum("listening on" in line for line in server.log) < workers:
            await asyncio.sleep(0.05)
        users, chats = await setup(server, args.pairs)
        arrivals: dict[str, float] = {}
        readers = [asyncio.create_task(receiver(users[2 * i + 1], arrivals))
                   for i in range(args.pairs)]
        await saturate(users, chats, 2, 1.0, arrivals)  # warm up
        server_cpu, bench_cpu = _cpu_seconds(server), time.process_time()
        pg_cpu = _postgres_cpu_seconds(database)
        before = len(arrivals)
        rate = await saturate(users, chats, args.window, args.seconds, arrivals)
        delivered = len(arrivals) - before
        server_cpu = _cpu_seconds(server) - server_cpu
        bench_cpu = time.process_time() - bench_cpu
        pg_after = _postgres_cpu_seconds(database)
        print(f"saturated: {rate:,.0f} durable messages/s end to end "
              f"({args.pairs} pairs, window {args.window}, {args.seconds:.0f} s)")
        # CPU per message moves less than the rate when neighbours share the machine's cores
        in_postgres = ("" if pg_cpu is None or pg_after is None else
                       f", PostgreSQL's backends {(pg_after - pg_cpu) / delivered * 1e6:.0f} us")
        print(f"CPU per message: server {server_cpu / delivered * 1e6:.0f} us, "
              f"this process (the clients) {bench_cpu / delivered * 1e6:.0f} us{in_postgres}")
        latencies, lost, offered = await paced(users, chats, rate / 2, args.seconds, arrivals)
        print(f"at half that rate ({offered:,.0f}/s offered): p50 {pct(latencies, 0.50):.1f} ms, "
              f"p99 {pct(latencies, 0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms, "
              f"{len(latencies)} delivered, {lost} not delivered within 1 s of the end")
        for task in readers:
            task.cancel()
        for user in users:
            await user.close()


if __name__ == "__main__":
    from pigeon.runtime import run

    run(main())
