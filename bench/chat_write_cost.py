"""The write cost of one message to a 10,000-member chat: a regular group against a large
one (kind ``supergroup``, written on its own stream ``chat:<id>``).

    python bench/chat_write_cost.py [--members 10000] [--messages 50]

Issue 8, deliverable 2. A regular group's message numbers an update for every member (one
``pts`` bump and one log row each) on the single writer thread; a large chat's is one item
on the chat's stream. Both chats are built in one fresh SQLite store through the Store
interface (the regular group past the server's 1,000-member limit, as the store allows); then
--messages messages are sent to each, one at a time, each awaited until durable (fsync), and
the rows each wrote are counted by SQLite on the writer connection. Prints rows and
milliseconds per message (p50, max) for both. Not a test: times vary with the machine and
its neighbours; the row counts do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon.store import SqliteStore
from pigeon.testing_crowds import NOW, crowd, rows_written


async def measure(store: SqliteStore, owner: int, chat_id: int, messages: int,
                  first_random_id: int) -> tuple[list[int], list[float]]:
    rows, millis = [], []
    for i in range(messages):
        seconds, written = await rows_written(store, timed(store.send_message(
            owner, chat_id, first_random_id + i, f"message {i}", NOW + i)))
        millis.append(seconds * 1000)
        rows.append(written)
    return rows, millis


async def timed(write: Awaitable[object]) -> float:
    """How long ``write`` took, from queueing to durable (its commit's fsync included)."""
    started = time.perf_counter()
    await write
    return time.perf_counter() - started


async def main(members: int, messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "pigeon.db")
        await store.open()
        try:
            started = time.perf_counter()
            regular = await crowd(store, members, large=False)
            large = await crowd(store, members, large=True, phone_base=members)
            print(f"set-up: two chats of {members:,} members in "
                  f"{time.perf_counter() - started:.1f} s")
            results = {
                "regular group (before)": await measure(store, regular.owner, regular.chat_id,
                                                        messages, 1),
                "large chat, chat stream (after)": await measure(
                    store, large.owner, large.chat_id, messages, 1_000_000),
            }
        finally:
            await store.close()
    print(f"one message to a {members:,}-member chat, {messages} messages each, "
          "each durable before the next:")
    for name, (rows, millis) in results.items():
        print(f"  {name:33s} rows/message {statistics.median(rows):>8,.0f}   "
              f"ms/message p50 {statistics.median(millis):7.2f}  max {max(millis):7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.members, args.messages))
