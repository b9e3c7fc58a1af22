"""One writer process of test_concurrency.py: ``python pts_writer.py URL SENDER CHAT COUNT``
sends COUNT messages as SENDER into CHAT through its own PostgresStore, many at once (so that
its store batches them), then prints how many were acknowledged and how many its store did
together (store/postgres_bulk.py). It prints "ready" once its
store is open and waits for a line on stdin, so that the test starts every writer at once."""

from __future__ import annotations

import asyncio
import sys

from pigeon.store.postgres import PostgresStore


async def main(url: str, sender: int, chat: int, count: int) -> None:
    store = PostgresStore(url, readers=1)
    await store.open()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    try:
        sent = await asyncio.gather(*(
            store.send_message(sender, chat, sender * 1_000_000 + i, f"{sender}:{i}", 1.0 + i)
            for i in range(count)))
    finally:
        await store.close()
    print(len(sent), store.postgres.stats.together, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
