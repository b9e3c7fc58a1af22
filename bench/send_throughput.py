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
the peer's receipt. Phase 1 also reports the CPU time spent per delivered message by each
process that serves the run (the server, or each worker and the supervisor; on PostgreSQL
on this machine its backends and its walwriter, checkpointer and background writer; the
nats-server; this process, the clients), how busy the whole machine was and how much of it
went to other work, and PostgreSQL's transactions per message. CPU per message moves far
less than the rate when other work shares the machine's cores. Not a test:
figures vary with the machine and its neighbours; run it a few times, alternating the
versions compared, and compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
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


class CpuMeter:
    """CPU time per process of everything that serves the run, read before and after phase 1,
    and the whole machine's busy and idle time (other work on the machine shows as the busy
    time no process of the run accounts for). PostgreSQL's backends are found by their
    process titles, which name the database (not found: PostgreSQL on another machine);
    its walwriter, checkpointer and background writer are counted beside them (they serve
    every database on that server: any other load on it is counted too). Processes that
    exit in between are missed: the server keeps its connections for the whole run."""

    _PG_AUX = ("walwriter", "checkpointer", "background writer")

    def __init__(self, server: ServerProcess, database: str | None, nats_pid: int | None):
        assert server.proc is not None
        self.top = psutil.Process(server.proc.pid)
        self.database = database
        self.nats_pid = nats_pid

    def _processes(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {}
        children = self.top.children(recursive=True)
        workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        if workers:
            groups["supervisor"] = [self.top]
            for i, proc in enumerate(sorted(workers, key=lambda c: c.pid)):
                groups[f"worker {i}"] = [proc]
        else:
            groups["server"] = [self.top]
        if self.database is not None:
            for proc in psutil.process_iter(["cmdline"]):
                title = " ".join(proc.info["cmdline"] or [])
                if not title.startswith("postgres:"):
                    continue
                if f" {self.database} " in title:
                    groups.setdefault("PostgreSQL backends", []).append(proc)
                elif title.rstrip().endswith(self._PG_AUX):
                    groups.setdefault("PostgreSQL walwriter etc.", []).append(proc)
        if self.nats_pid is not None:
            groups["nats-server"] = [psutil.Process(self.nats_pid)]
        groups["clients (this process)"] = [psutil.Process()]
        return groups

    def read(self) -> dict[str, float]:
        times: dict[str, float] = {}
        for name, procs in self._processes().items():
            for proc in procs:
                try:
                    t = proc.cpu_times()
                    # a process's own and its reaped children's (a worker's resource tracker)
                    times[name] = times.get(name, 0.0) + t.user + t.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        times["(machine busy)"] = sum(machine) - idle
        times["(machine idle)"] = idle
        return times

    @staticmethod
    def report(before: dict[str, float], after: dict[str, float], delivered: int,
               seconds: float) -> str:
        spent = {name: after[name] - before.get(name, 0.0) for name in after}
        busy, idle = spent.pop("(machine busy)"), spent.pop("(machine idle)")
        accounted = sum(spent.values())
        cores = psutil.cpu_count() or 1
        lines = [f"CPU per message ({cores} cores, {busy / (busy + idle):.0%} busy, load "
                 f"average {psutil.getloadavg()[0]:.1f}):"]
        for name, value in spent.items():
            lines.append(f"  {name:<28}{value / delivered * 1e6:6.0f} us "
                         f"({value / seconds:.2f} cores)")
        lines.append(f"  {'all of the above':<28}{accounted / delivered * 1e6:6.0f} us")
        lines.append(f"  {'other work on the machine':<28}"
                     f"{max(0.0, busy - accounted) / seconds:6.2f} cores")
        return "\n".join(lines)


async def _commits(database: str | None) -> int | None:
    """Transactions committed in ``database`` so far, as PostgreSQL's statistics have them
    (a busy backend reports at most once a second: read over a run of several seconds)."""
    if database is None:
        return None
    admin = await asyncpg.connect(pg.ADMIN_URL, timeout=3)
    try:
        return await admin.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
    finally:
        await admin.close()


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
    # The clients share the machine's cores with the server: their process collects young
    # objects as a server does (server/collections_hold.py, settle_collector), so that the
    # collector's walks over hundreds of sends in flight are not what the run measures.
    gc.freeze()
    gc.set_threshold(20_000, *gc.get_threshold()[1:])
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
        nats = None
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
        meter = CpuMeter(server, database, nats.pid if nats is not None else None)
        before = len(arrivals)
        commits = await _commits(database)
        cpu_before, started = meter.read(), time.perf_counter()
        rate = await saturate(users, chats, args.window, args.seconds, arrivals)
        cpu_after, elapsed = meter.read(), time.perf_counter() - started
        await asyncio.sleep(1.0)  # PostgreSQL's backends report their statistics
        commits_after = await _commits(database)
        delivered = len(arrivals) - before
        print(f"saturated: {rate:,.0f} durable messages/s end to end "
              f"({args.pairs} pairs, window {args.window}, {args.seconds:.0f} s)")
        # CPU per message moves less than the rate when neighbours share the machine's cores
        print(CpuMeter.report(cpu_before, cpu_after, delivered, elapsed))
        if commits is not None and commits_after is not None:
            print(f"PostgreSQL transactions: {(commits_after - commits) / delivered:.3f} a "
                  f"message ({delivered / max(1, commits_after - commits):.1f} messages each)")
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
