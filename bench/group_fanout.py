"""Another user's private-send latency while one account floods a big group.

    python bench/group_fanout.py [--members 20000] [--seconds 10] [--window 8] [--src DIR]

Issue 7, finding 6: every group message writes one update row per member on the single
writer thread; with 20,000 members a message took 415 ms of it and another user's private
send went from 2 ms to 13.5 s. This starts a real server whose database already holds a group
of --members accounts (inserted with SQL before the server starts: signing up 20,000 people
through the API would take longer than the measurement), logs in that group's owner as the
flooder (--window sends in flight, as fast as the server takes them; on RATE_LIMITED it waits
what the server says, as the SDK does) and two other people, Ann and Ben, in a private chat.
Ann sends to Ben one message at a time: first alone, then during the flood. It prints Ann's
latency (p50, p99, max) in both phases and the flood's committed and refused messages.

--src runs another checkout's code (e.g. the commit before the fix, unpacked with
``git archive``), so that before and after are measured the same way. Not a test: figures vary
with the machine and its neighbours.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _use_source(argv: list[str]) -> None:
    src = Path(__file__).resolve().parents[1] / "src"
    if "--src" in argv:
        src = Path(argv[argv.index("--src") + 1]).resolve()
    sys.path.insert(0, str(src))
    os.environ["PYTHONPATH"] = str(src)  # the server subprocess runs the same code


_use_source(sys.argv)

from pigeon.protocol.errors import RateLimited  # noqa: E402
from pigeon.server.settings import Settings  # noqa: E402
from pigeon.store.migrations import migrate  # noqa: E402
from pigeon.testing import ServerProcess, login  # noqa: E402

OWNER_PHONE = "+4915112345678"


def populate(db: Path, members: int) -> int:
    """A group of ``members`` accounts (the first is its owner); returns the chat id."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users (phone, name, created) VALUES (?, ?, 0)",
                     [(OWNER_PHONE if i == 1 else f"+1555{i:07d}", f"member {i}")
                      for i in range(1, members + 1)])
    (chat_id,) = conn.execute("INSERT INTO chats (kind, title, member_count, created) "
                              "VALUES ('group', 'Big', ?, 0) RETURNING id", (members,)).fetchone()
    conn.executemany(
        "INSERT INTO members (chat_id, user_id, role, joined) VALUES (?, ?, ?, 0)",
        [(chat_id, uid, "owner" if uid == 1 else "member") for uid in range(1, members + 1)])
    conn.execute("COMMIT")
    conn.close()
    return chat_id


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no sends completed"
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"n={len(ms)} p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms "
            f"max={ms[-1]:.1f} ms")


async def private_sends(ann, chat_id: int, seconds: float) -> list[float]:
    latencies = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        started = time.perf_counter()
        await ann.messages.send(chat_id, "hello ben")
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)  # a person, not a benchmark loop
    return latencies


async def flood(flooder, group_id: int, window: int, stop: asyncio.Event,
                counts: dict[str, int]) -> None:
    async def lane() -> None:
        while not stop.is_set():
            try:
                await flooder.messages.send(group_id, "flood")
                counts["committed"] += 1
            except RateLimited as exc:
                counts["refused"] += 1
                await asyncio.sleep(min(exc.retry_after or 1.0, 1.0))

    await asyncio.gather(*(lane() for _ in range(window)))


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="pigeon-fanout-")) / "data"
    group_id = populate(data / "pigeon.db", args.members)
    # The testing helper relaxes per-address limits for loopback; the fan-out budget is put
    # back to the server's default, which is what is being measured.
    rate = args.rate_fanout or getattr(Settings(), "rate_fanout", None)  # None: before it
    env = {"PIGEON_RATE_FANOUT": rate} if rate else {}
    print(f"rate_fanout={rate}")
    with ServerProcess(data, env=env) as server:
        flooder = await login(server, OWNER_PHONE, "Owner")
        flooder.max_rate_wait = 0.0
        ann = await login(server, "+4915100000001", "Ann")
        ben = await login(server, "+4915100000002", "Ben")
        chat = await ann.chats.open_private(ben.profile.user_id)
        await ann.messages.send(chat.id, "warm up")
        alone = await private_sends(ann, chat.id, args.seconds / 2)
        print(f"members={args.members} alone:        Ann's private sends {summary(alone)}")
        stop = asyncio.Event()
        counts = {"committed": 0, "refused": 0}
        flooding = asyncio.create_task(flood(flooder, group_id, args.window, stop, counts))
        await asyncio.sleep(0.5)
        during = await private_sends(ann, chat.id, args.seconds)
        stop.set()
        await asyncio.wait_for(flooding, 120)
        print(f"members={args.members} during flood: Ann's private sends {summary(during)}")
        print(f"flood: {counts['committed']} group messages committed "
              f"({counts['committed'] * args.members} member-updates), "
              f"{counts['refused']} refused")
        for client in (flooder, ann, ben):
            await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--rate-fanout", default=None,
                        help="the server's rate_fanout (default: its own default)")
    parser.add_argument("--src", default=None, help="run this checkout's src/ instead")
    asyncio.run(main(parser.parse_args()))
