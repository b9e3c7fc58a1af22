"""Three nodes of one deployment (issue 12, deliverable 5): three server processes on one
PostgreSQL database and one NATS server, each telling clients of all three. One node killed
with -9 while everyone sends: every acknowledged message survives, once; every client
recovers on another node by itself and catches up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from nats_support import free_port, nats_server

from pigeon.client import Client
from pigeon.protocol.updates import NewMessage
from pigeon.testing import ServerProcess, login

pytestmark = pytest.mark.slow


async def test_a_node_killed_under_load_loses_nothing_and_everyone_recovers(
        tmp_path: Path, phone, database: str) -> None:
    ports = [free_port() for _ in range(3)]
    endpoints = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    with contextlib.ExitStack() as stack:
        nats_srv = stack.enter_context(nats_server(tmp_path))
        nodes = []
        for i, port in enumerate(ports):
            node = ServerProcess(tmp_path / f"node{i}", "--store", database, "--bus",
                                 nats_srv.url, env={"PIGEON_ENDPOINTS": endpoints})
            node.port = port
            nodes.append(stack.enter_context(node))
        # Two people on each node; one group of all six.
        people: list[Client] = []
        try:
            for i in range(6):
                people.append(await login(nodes[i % 3], phone(), f"P{i}"))
            assert all(len(p.endpoints()) == 3 for p in people)  # told at hello
            group = await people[0].chats.create_group(
                "desk", [p.profile.user_id for p in people[1:]])
            acked: dict[str, int] = {}  # text -> message id, once acknowledged
            stop = asyncio.Event()

            async def talk(i: int, person: Client) -> None:
                n = 0
                while not stop.is_set():
                    text = f"p{i}-{n}"
                    sent = await person.messages.send(group.id, text)
                    acked[text] = sent.message.id
                    n += 1
                    await asyncio.sleep(0.01)

            talkers = [asyncio.create_task(talk(i, p)) for i, p in enumerate(people)]
            while len(acked) < 30:
                await asyncio.sleep(0.01)
            killed_at = time.monotonic()
            nodes[0].kill()  # its two people are cut off mid-send
            while len(acked) < 90 or not all(p.connected for p in people):
                assert time.monotonic() - killed_at < 60, "not everyone came back"
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*talkers), 30)
            assert people[0].reconnects >= 1 and people[3].reconnects >= 1
            assert all(p.url != nodes[0].url.replace("http", "ws") + "/v1/ws"
                       for p in (people[0], people[3]))
            # Every acknowledged message is in the group's history, exactly once, for all.
            for person in people:
                history = await person.messages.history(group.id, limit=10_000)
                texts = [m.text for m in history if m.text.startswith("p")]
                assert len(texts) == len(set(texts)), "a message was stored twice"
                assert set(acked) <= set(texts), set(acked) - set(texts)
            # And each device's own stream carried them: a reader that follows updates gets
            # the last one, whichever node it is on now.
            last = max(acked, key=lambda t: acked[t])
            for person in people[1:]:
                async def seen(client: Client = person) -> None:
                    async for update in client.updates():
                        if isinstance(update, NewMessage) and update.message.text == last:
                            return
                await asyncio.wait_for(seen(), 30)
        finally:
            for person in people:
                await person.close()
