"""The server's cost of a returning device's hello: with its resumption ticket, and without.

    python bench/resume_handshake.py [--sessions 2000] [--concurrency 200] [--rounds 3]

Issue 13. A fresh SQLite store gets --sessions sessions; then every one of them says
``hello`` with its token, --concurrency at a time (a reconnect storm in miniature), once
with the ticket its last welcome gave it and once without, alternately for --rounds rounds.
The hellos run in this process through the server's own Connection (frame decode, shield
checks, token or ticket, state read, welcome encode), with no network: what is timed is the
server's work and its database reads, not a client's. Prints hellos a second for each and
the ratio, and the database reads each hello made (4 the long way: the session, its user,
the session again once attached, the state; 1 with a ticket: the state). Not a test: times
vary with the machine and its neighbours; the reads do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pigeon.bus import LocalBus
from pigeon.protocol.frames import ClientProtocol
from pigeon.server.codes import make_sender
from pigeon.server.connection import Connection
from pigeon.server.metrics import Metrics
from pigeon.server.services import Services
from pigeon.server.sessions import hash_token, new_token
from pigeon.server.settings import Settings
from pigeon.shield.guard import Shield
from pigeon.shield.state import MemoryShieldState
from pigeon.store import SqliteStore

_MANY = "1000000/1s burst 1000000"


class CountedReads:
    """Counts the store's reads (each a trip to a reader thread and SQLite)."""

    def __init__(self, store: SqliteStore) -> None:
        self.count = 0
        read = store.engine.read

        async def counted(fn: Any, *args: Any) -> Any:
            self.count += 1
            return await read(fn, *args)

        store.engine.read = counted  # type: ignore[method-assign]


async def storm(services: Services, hellos: list[bytes], concurrency: int) -> float:
    """Seconds for every hello to be welcomed, ``concurrency`` at a time."""
    slots = asyncio.Semaphore(concurrency)
    welcomed = 0

    async def one(frame: bytes) -> None:
        nonlocal welcomed
        async with slots:
            conn = Connection(services, "127.0.0.1")
            await conn.receive(frame)
            welcomed += conn.session_id is not None
            conn.close(1000, "")
            conn.finished()

    started = time.perf_counter()
    await asyncio.gather(*(one(h) for h in hellos))
    elapsed = time.perf_counter() - started
    assert welcomed == len(hellos), f"only {welcomed} of {len(hellos)} logged in"
    return elapsed


async def main(sessions: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data=Path(tmp), rate_address=_MANY, rate_prefix=_MANY,
                            rate_session=_MANY, rate_account=_MANY)
        store = SqliteStore(settings.db_path)
        await store.open()
        shield = Shield(settings, state=MemoryShieldState(b"s" * 32))
        services = Services(settings=settings, store=store, bus=LocalBus(),
                            codes=make_sender("console", None), metrics=Metrics(),
                            secret=shield.state.secret, shield=shield)
        tokens = []
        for i in range(sessions):
            user = await store.create_user(f"+4915{i:09d}", f"user {i}", time.time())
            token = new_token()
            await store.create_session(user.id, hash_token(token), "bench", "127.0.0.1",
                                       time.time())
            tokens.append((token, user.id))
        services.resumption.load(await store.live_sessions(sessions))
        by_token = {}
        for session_id, user_id in await store.live_sessions(sessions):
            by_token[user_id] = session_id
        with_ticket = [ClientProtocol.hello(token, ticket=services.resumption.issue(
            by_token[user_id], user_id, token)) for token, user_id in tokens]
        without = [ClientProtocol.hello(token) for token, _ in tokens]
        rates: dict[str, list[float]] = {"token only": [], "ticket": []}
        reads: dict[str, float] = {}
        counter = CountedReads(store)
        try:
            for _ in range(rounds):
                for name, hellos in (("token only", without), ("ticket", with_ticket)):
                    await asyncio.sleep(1.0)  # the previous round's last-active writes settle
                    before = counter.count
                    rates[name].append(sessions / await storm(services, hellos, concurrency))
                    reads[name] = (counter.count - before) / sessions
        finally:
            await store.close()
    for name, values in rates.items():
        print(f"{name:>10}: {reads[name]:.0f} database reads per hello, "
              f"{statistics.median(values):8,.0f} hellos/s "
              f"(runs: {', '.join(f'{v:,.0f}' for v in values)})")
    ratio = [t / o for t, o in zip(rates["ticket"], rates["token only"], strict=True)]
    print(f"     ratio: {statistics.median(ratio):.2f}x "
          f"(runs: {', '.join(f'{r:.2f}' for r in ratio)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.concurrency, args.rounds))
