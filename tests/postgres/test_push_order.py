"""Several writers in ONE process: callers hear back in each user's ``pts`` order.

The server publishes a write's pushes as soon as its caller hears back, so the order in which
callers hear back is the order a device receives its stream in. Here many senders, sharded
over the store's writers, each message one recipient in their own private chat: every send
bumps the recipient's pts, the writers contend on that one row, and the answers must arrive
with the recipient's pts strictly increasing (postgres_engine: the commit turn), even when
some writers hear of their COMMIT late (a relay delays it on every other connection): a
writer that committed after a slow one must still answer after it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from pg_relay import Relay

from pigeon.store.postgres import PostgresStore

SENDERS = 24
EACH = 12


async def test_answers_come_in_each_recipients_pts_order(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432, slow_commits=0.02)
    await relay.start()
    store = PostgresStore(urlunsplit(parts._replace(
        netloc=f"{parts.username}@127.0.0.1:{relay.port}")), readers=1, writers=3)
    await store.open()
    try:
        recipient = (await store.create_user("+15550200000", "r", 1.0)).id
        senders = [(await store.create_user(f"+1555021{i:04d}", f"s{i}", 1.0)).id
                   for i in range(SENDERS)]
        chats = [(await store.open_private(s, recipient, 1.0)).id for s in senders]
        heard: list[int] = []  # the recipient's pts, in the order callers heard back

        async def lane(sender: int, chat: int) -> None:
            for n in range(EACH):
                _, _, pushes = await store.send_message(sender, chat, n + 1, f"m{n}", 2.0)
                heard.extend(p for push in pushes for uid, p in push.targets
                             if uid == recipient)

        await asyncio.gather(*(lane(s, c) for s, c in zip(senders, chats, strict=True)))
        assert len(heard) == SENDERS * EACH
        assert heard == sorted(heard), "a later pts was answered before an earlier one"
        assert store.postgres.stats.batches < SENDERS * EACH  # they were batched
    finally:
        await store.close()
        await relay.cut()
