"""``pigeon serve --store postgresql://...``: the real server process on PostgreSQL, a message
sent and received through it, still there after a kill -9 and a restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest

from pigeon.client import Client
from pigeon.protocol.updates import NewMessage
from pigeon.testing import ServerProcess, login

pytestmark = pytest.mark.slow


async def next_message(client: Client, timeout: float = 10.0) -> NewMessage:
    async def wait() -> NewMessage:
        async for update in client.updates():
            if isinstance(update, NewMessage):
                return update
        raise AssertionError("the update stream ended")
    return await asyncio.wait_for(wait(), timeout)


async def test_serve_on_postgresql_sends_receives_and_keeps_after_kill(
        tmp_path, phone, database: str) -> None:  # type: ignore[no-untyped-def]
    with ServerProcess(tmp_path / "data", "--store", database) as server:
        pa, pb = phone(), phone()
        alice = await login(server, pa, "Alice")
        bob = await login(server, pb, "Bob")
        try:
            chat = await alice.chats.open_private(bob.profile.user_id)
            sent = await alice.messages.send(chat.id, "hello over postgres")
            got = await next_message(bob)
            assert (got.message.id, got.message.text) == (sent.message.id, "hello over postgres")
            # both sides at once, many in flight: batches of sends done together
            # (store/postgres_bulk.py), each side's messages in the order sent
            burst = await asyncio.gather(*(
                (alice if i % 2 else bob).messages.send(chat.id, f"burst {i}")
                for i in range(40)))
            assert sorted(s.message.id for s in burst) == list(range(2, 42))
            for author in ("alice", "bob"):
                ids = [s.message.id for i, s in enumerate(burst) if (i % 2 == 1) == (
                    author == "alice")]
                assert ids == sorted(ids)
            async with aiohttp.ClientSession() as http, http.get(
                    server.operator_url + "/metrics") as response:
                metrics = await response.text()
            assert _counter(metrics, "pigeon_store_together_total") > 0
        finally:
            await alice.close()
            await bob.close()
        server.kill()  # acknowledged means committed in PostgreSQL, not in this process
        server.restart()
        bob = await login(server, pb, "Bob", device="laptop")  # his account, a new device
        try:
            history = await bob.messages.history(chat.id)
            texts = [m.text for m in reversed(history)]
            assert texts[0] == "hello over postgres"
            assert sorted(texts[1:]) == sorted(f"burst {i}" for i in range(40))
        finally:
            await bob.close()
        assert not (tmp_path / "data" / "pigeon.db").exists()  # nothing went to SQLite
    rows = await _texts(database)
    assert rows[0] == "hello over postgres" and len(rows) == 41


def _counter(metrics: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics.splitlines()
               if line.startswith(name + " "))


async def _texts(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT text FROM messages ORDER BY id")]
    finally:
        await conn.close()


def test_an_unreachable_store_is_one_error_line_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "serve", "--data", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0", "--operator-listen", "off",
         "--store", "postgresql://pigeon@127.0.0.1:1/pigeon"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: cannot open the store at postgresql://pigeon@127.0.0.1:1/pigeon: "
        "Connection refused"]
