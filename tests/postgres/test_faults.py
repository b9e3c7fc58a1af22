"""PostgreSQL unreachable mid-load: callers get STORAGE_FAILED (typed, retryable), nothing
acknowledged is lost, and the pool recovers once the server is back.

The store talks to PostgreSQL through a TCP relay that the test cuts (every connection
reset, the port refusing) and restores: the machine's server keeps running for others."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import pytest
from pg_relay import Relay

from pigeon.protocol.errors import Unavailable
from pigeon.store.postgres import PostgresStore


async def test_unreachable_mid_load_fails_typed_and_the_pool_recovers(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await relay.start()
    store = PostgresStore(urlunsplit(parts._replace(
        netloc=f"{parts.username}@127.0.0.1:{relay.port}")), readers=2)
    await store.open()
    try:
        a = await store.create_user("+15550200001", "a", 1.0)
        b = await store.create_user("+15550200002", "b", 1.0)
        chat = await store.open_private(a.id, b.id, 1.0)
        acked = [await store.send_message(a.id, chat.id, i, f"m{i}", 1.0) for i in range(5)]

        await relay.cut()  # under load: sends in flight when the server goes away
        outcomes = await asyncio.gather(
            *(store.send_message(a.id, chat.id, 100 + i, f"x{i}", 2.0) for i in range(20)),
            store.history(b.id, chat.id, None, 10), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        assert failures, "nothing noticed the server was gone"
        assert all(isinstance(f, Unavailable) and f.code == "STORAGE_FAILED"
                   for f in failures), failures
        with pytest.raises(Unavailable) as info:
            await store.get_state(a.id)
        assert info.value.code == "STORAGE_FAILED" and info.value.retryable
        with pytest.raises(Unavailable):  # what /healthz asks: not reachable, 503
            await store.ping()

        assert store.stats().connections <= 3  # failed connections were dropped, not kept
        await relay.start()  # the same port: the server is back
        await store.ping()
        again, _, _ = await store.send_message(a.id, chat.id, 999, "after", 3.0)
        texts = [m.text for m in await store.history(b.id, chat.id, None, 100)]
        assert [m.text for m, _, _ in acked] == [t for t in reversed(texts) if t.startswith("m")]
        assert texts[0] == "after" and again.text == "after"
        assert store.stats().connections >= 2  # a writer's and a reader's, opened afresh
        # what was acknowledged during the cut is there too, and nothing twice (a send whose
        # COMMIT was cut off may have landed unacknowledged: its caller retries by random_id)
        ok = {o[0].text for o in outcomes[:20] if not isinstance(o, BaseException)}
        during = [t for t in texts if t.startswith("x")]
        assert ok <= set(during) and len(during) == len(set(during))
    finally:
        await store.close()
        with contextlib.suppress(Exception):
            await relay.cut()
