"""Two regions that fail independently (issue 12, deliverable 6): each its own PostgreSQL
database, its own nats-server with JetStream, the two joined by a gateway, and its own
`pigeon serve`. Alice and Carol live in region a, Bob in region b. Region b goes away
(kill -9 of its node and of its nats-server): a keeps serving its own people, and every
message Alice sends Bob meanwhile is acknowledged; b returns and Bob gets each exactly once,
in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats_support import free_port, nats_binary

from pigeon import testing_postgres as pg
from pigeon.client import Client
from pigeon.domain.regions import ID_SHIFT
from pigeon.protocol import methods as m
from pigeon.protocol.errors import WrongRegion
from pigeon.protocol.updates import NewMessage
from pigeon.testing import ServerProcess, login
from pigeon.testing_nats import GatewayNode, running_regions

pytestmark = pytest.mark.slow

N_AWAY = 20  # messages Alice sends while Bob's region is away


def uk_phone(n: int) -> str:
    return f"+447400{os.getpid() % 1000:03d}{n:03d}"  # a UK mobile range


class Region:
    def __init__(self, name: str, nats: GatewayNode, database: str, table: Path,
                 data: Path) -> None:
        self.nats = nats
        self.node = ServerProcess(data, "--store", database, "--bus", nats.url,
                                  "--region", name, "--regions", str(table), "--workers", "1")


@contextlib.contextmanager
def two_regions(tmp_path: Path, databases: list[str]) -> Iterator[tuple[Region, Region]]:
    nats_binary()  # skip (or fail under CI) without nats-server
    table = tmp_path / "regions.json"
    ports = [free_port(), free_port()]
    table.write_text(json.dumps({"regions": [
        {"name": "a", "index": 0, "endpoints": [f"ws://127.0.0.1:{ports[0]}/v1/ws"],
         "calling_codes": [49], "default": True},
        {"name": "b", "index": 1, "endpoints": [f"ws://127.0.0.1:{ports[1]}/v1/ws"],
         "calling_codes": [44]},
    ]}))
    with running_regions(tmp_path, "a", "b") as (nats_a, nats_b):
        a = Region("a", nats_a, databases[0], table, tmp_path / "a")
        b = Region("b", nats_b, databases[1], table, tmp_path / "b")
        a.node.port, b.node.port = ports
        with a.node, b.node:
            yield a, b


@contextlib.asynccontextmanager
async def two_databases() -> AsyncIterator[list[str]]:
    await pg.require_postgres()
    names = [await pg.create_database(), await pg.create_database()]
    try:
        yield [pg.url_for(n) for n in names]
    finally:
        for name in names:
            await pg.drop_database(name)


async def next_text(client: Client, timeout: float = 30.0) -> tuple[int, str]:
    async def wait() -> tuple[int, str]:
        async for update in client.updates():
            if (isinstance(update, NewMessage)
                    and update.message.sender_id != client.profile.user_id):
                return update.message.chat_id, update.message.text
        raise AssertionError("updates ended")
    return await asyncio.wait_for(wait(), timeout)


async def test_a_region_away_loses_nothing_and_the_other_keeps_serving(
        tmp_path: Path, phone) -> None:
    async with two_databases() as databases:
        with two_regions(tmp_path, databases) as (a, b):
            alice = await login(a.node, phone(), "Alice")
            carol = await login(a.node, phone(), "Carol")
            bob_phone = uk_phone(1)
            bob = await login(b.node, bob_phone, "Bob")
            clients = [alice, carol, bob]
            try:
                assert bob.profile.user_id is not None and bob.profile.user_id >> ID_SHIFT == 1
                assert alice.profile.user_id is not None and alice.profile.user_id >> ID_SHIFT == 0
                # Logging in at the wrong region says where to go: an old client gets the
                # typed error, the SDK goes there by itself.
                stray = Client(a.node.url)
                clients.append(stray)
                await stray.connect()
                with pytest.raises(WrongRegion) as wrong:
                    await stray.call("auth.send_code", m.SendCode(phone=bob_phone, sms=True))
                assert wrong.value.endpoints == [f"{b.node.url.replace('http', 'ws')}/v1/ws"]
                await stray.auth.send_code(bob_phone, sms=True)
                assert stray.url.endswith(f":{b.node.port}/v1/ws")
                await stray.auth.sign_in(await asyncio.to_thread(b.node.code_for, bob_phone))
                assert stray.profile.user_id == bob.profile.user_id

                # Across regions, both ways.
                await bob.account.set_phone_discoverable(True)
                found = await alice.account.resolve_phone(bob_phone)
                assert found.id == bob.profile.user_id and found.name == "Bob"
                to_bob = await alice.chats.open_private(found.id)
                await alice.messages.send(to_bob.id, "hello bob")
                bobs_chat, text = await next_text(bob, 45)
                assert text == "hello bob"
                await bob.messages.send(bobs_chat, "hello alice")
                chat, text = await next_text(alice, 45)
                assert (chat, text) == (to_bob.id, "hello alice")

                # Region b goes away, node and nats-server, with kill -9.
                await bob.close()
                b.node.kill()
                b.nats.kill()
                # a's people keep chatting among themselves...
                with_carol = await alice.chats.open_private(carol.profile.user_id or 0)
                for i in range(3):
                    await alice.messages.send(with_carol.id, f"to carol {i}")
                    assert await next_text(carol, 10) == (with_carol.id, f"to carol {i}")
                    await carol.messages.send(with_carol.id, f"to alice {i}")
                    assert await next_text(alice, 10) == (with_carol.id, f"to alice {i}")
                # ... and what Alice sends Bob is acknowledged by a, each at once.
                started = time.monotonic()
                for i in range(N_AWAY):
                    sent = await asyncio.wait_for(
                        alice.messages.send(to_bob.id, f"away {i}"), 10)
                    assert sent.message.text == f"away {i}"
                assert time.monotonic() - started < 20
                # Bob's region can't be asked anything now: a clear error, no hang.
                with pytest.raises(Exception) as away:
                    await asyncio.wait_for(alice.account.resolve_phone(uk_phone(2)), 10)
                assert getattr(away.value, "code", "") in ("REGION_UNAVAILABLE",
                                                           "USER_NOT_FOUND")

                # Region b returns: the same database, the same JetStream directory.
                b.nats.start()
                b.node.start()
                bob = await login(b.node, bob_phone, "Bob")
                clients.append(bob)
                deadline = time.monotonic() + 50
                while True:
                    history = await bob.messages.history(bobs_chat, limit=1000)
                    texts = [m.text for m in reversed(history)]
                    if sum(t.startswith("away ") for t in texts) >= N_AWAY:
                        break
                    assert time.monotonic() < deadline, texts
                    await asyncio.sleep(0.5)
                await asyncio.sleep(1.5)  # anything redelivered would land now
                history = await bob.messages.history(bobs_chat, limit=1000)
                texts = [m.text for m in reversed(history)]
                assert texts == (["hello bob", "hello alice"]
                                 + [f"away {i}" for i in range(N_AWAY)])
                ids = [m.id for m in reversed(history)]
                assert ids == sorted(set(ids))
                # ... and Bob's own updates carry each once (what get_difference gives).
                diff = await bob.messages.difference(0) if hasattr(bob.messages, "difference") \
                    else None
                if diff is not None:
                    got = [u.message.text for u in diff.updates if isinstance(u, NewMessage)]
                    assert got.count("away 0") == 1
                # Bob -> Alice works again.
                await bob.messages.send(bobs_chat, "back")
                chat, text = await next_text(alice, 45)
                assert (chat, text) == (to_bob.id, "back")
            finally:
                for client in clients:
                    await client.close()
