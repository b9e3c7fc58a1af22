"""Issue 12's figures beyond one process: a 1,000-member group's fan-out on two workers, and
how long clients take to be served again after a node is killed.

    python bench/scale_out.py [--members 1000] [--online 60] [--messages 200]
                              [--clients 60] [--skip fanout|failover]

Needs PostgreSQL (PIGEON_TEST_POSTGRES, default 127.0.0.1:5432, a fresh database, dropped
after) and ``nats-server`` (one of its own on a free port).

fanout: the group's members are created through the store (signing 1,000 people up through
the API would take longer than the measurement), the owner and --online members log in to a
server of ``--workers 2`` (SO_REUSEPORT spreads them over both), the owner sends --messages
messages as fast as they are acknowledged (8 in flight), and it prints the rate and, per
message, the time until every online member had it (p50, p99, max), with how many members
were on each worker.

failover: three nodes on the same database and NATS, each naming all three as endpoints;
--clients people, a third on each, each sending one message a second to a private chat; node
0 is killed with -9, and it prints, for the people who were on it, the time from the kill to
their first acknowledged send on another node (p50, max), and whether everyone else went on.
Not a test: figures vary with the machine and its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon import testing_postgres as pg  # noqa: E402
from pigeon.client import Client  # noqa: E402
from pigeon.protocol.updates import NewMessage  # noqa: E402
from pigeon.store.postgres import PostgresStore  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402
from pigeon.testing_nats import free_port, running_nats  # noqa: E402

OWNER = "+4915190000000"


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def fanout(args: argparse.Namespace, url: str, nats_url: str) -> None:
    store = PostgresStore(url)
    await store.open()
    try:
        owner = await store.create_user(OWNER, "owner", time.time())
        members = [await store.create_user(f"+4915160{i:06d}", f"member {i}", time.time())
                   for i in range(1, args.members)]
        chat, _ = await store.create_group(owner.id, "big", [m.id for m in members],
                                           time.time(), args.members + 1)
    finally:
        await store.close()
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(
            Path(tmp) / "data", "--store", url, "--bus", nats_url, "--workers", "2") as server:
        while sum("listening on" in line for line in server.log) < 2:
            await asyncio.sleep(0.05)
        sender = await login(server, OWNER, "owner")
        online = [await login(server, f"+4915160{i:06d}", f"member {i}",
                              local_address=f"127.0.1.{i}") for i in range(1, args.online + 1)]
        workers = [p for p in psutil.Process(server.proc.pid).children()  # type: ignore[union-attr]
                   if "resource_tracker" not in " ".join(p.cmdline())]
        spread = [sum(1 for c in w.net_connections("tcp")
                      if c.laddr.port == server.port and c.raddr) for w in workers]
        arrivals: dict[str, list[float]] = {}

        async def read(client: Client) -> None:
            async for update in client.updates():
                if isinstance(update, NewMessage):
                    arrivals.setdefault(update.message.text, []).append(time.monotonic())

        readers = [asyncio.create_task(read(c)) for c in online]
        sent_at: dict[str, float] = {}
        gate = asyncio.Semaphore(8)

        async def one(n: int) -> None:
            async with gate:
                text = f"m{n}"
                sent_at[text] = time.monotonic()
                await sender.messages.send(chat.id, text)

        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(args.messages)))
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(len(v) for v in arrivals.values()) < \
                args.messages * args.online:
            await asyncio.sleep(0.05)
        complete = [max(arrivals[t]) - sent_at[t] for t in sent_at
                    if len(arrivals.get(t, ())) == args.online]
        print(f"fanout: {args.messages / elapsed:,.0f} messages/s to a {args.members}-member "
              f"group on 2 workers ({args.messages * (args.members - 1) / elapsed:,.0f} updates/s "
              f"written); members online {args.online}, per worker {spread}")
        if complete:
            print(f"  until every online member had it: p50 {ms(complete, 0.5):.0f} ms, "
                  f"p99 {ms(complete, 0.99):.0f} ms, max {max(complete) * 1000:.0f} ms; "
                  f"{len(complete)}/{args.messages} reached all of them within 30 s")
        for task in readers:
            task.cancel()
        for client in [sender, *online]:
            await client.close()


async def failover(args: argparse.Namespace, url: str, nats_url: str) -> None:
    ports = [free_port() for _ in range(3)]
    endpoints = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        nodes = []
        for i, port in enumerate(ports):
            node = ServerProcess(Path(tmp) / f"node{i}", "--store", url, "--bus", nats_url,
                                 env={"PIGEON_ENDPOINTS": endpoints})
            node.port = port
            nodes.append(stack.enter_context(node))
        people = [await login(nodes[i % 3], f"+4915170{i:06d}", f"p{i}")
                  for i in range(args.clients)]
        pairs = [(people[i], await people[i].chats.open_private(
            people[(i + 1) % len(people)].profile.user_id)) for i in range(len(people))]
        acked: dict[int, list[float]] = {i: [] for i in range(len(people))}
        stop = asyncio.Event()

        async def talk(i: int) -> None:
            client, chat = pairs[i]
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    await client.messages.send(chat.id, f"{i}")
                    acked[i].append(time.monotonic())
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(talk(i)) for i in range(len(people))]
        await asyncio.sleep(3)
        killed = time.monotonic()
        nodes[0].kill()
        victims = [i for i in range(len(people)) if i % 3 == 0]
        while time.monotonic() - killed < 60 and not all(
                any(t > killed for t in acked[i]) for i in range(len(people))):
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
        back = [min(t for t in acked[i] if t > killed) - killed for i in victims
                if any(t > killed for t in acked[i])]
        others = [i for i in range(len(people)) if i % 3 and any(t > killed for t in acked[i])]
        print(f"failover: {len(back)}/{len(victims)} people of the killed node served again "
              f"on another: p50 {statistics.median(back):.2f} s, max {max(back):.2f} s after "
              f"the kill; {len(others)}/{len(people) - len(victims)} others went on")
        for client in people:
            await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--online", type=int, default=60)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--skip", choices=["fanout", "failover"], default=None)
    args = parser.parse_args()
    if reason := await pg.unavailable_reason():
        sys.exit(f"needs PostgreSQL: {reason}")
    with running_nats() as nats:
        for name, measure in (("fanout", fanout), ("failover", failover)):
            if args.skip == name:
                continue
            database = await pg.create_database()
            try:
                await asyncio.wait_for(measure(args, pg.url_for(database), nats.url), 600)
            finally:
                await pg.drop_database(database)


if __name__ == "__main__":
    from pigeon.runtime import run

    run(main())
