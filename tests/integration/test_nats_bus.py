"""The bus across processes (issue 12, deliverable 2): two NatsBus instances, as two server
processes would hold, joined by a real nats-server of the test's own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats_support import NatsServer, free_port, nats_server

from pigeon.bus.nats import NatsBus
from pigeon.protocol.updates import KeysLow
from pigeon.store.base import Push


class Device:
    """A connected device as the bus sees it; records what reaches it."""

    _ids = iter(range(1, 10**6))

    def __init__(self, user_id: int, session_id: int, reads_streams: bool = True) -> None:
        self.sink_id = next(self._ids)
        self.user_id = user_id
        self.session_id = session_id
        self.reads_streams = reads_streams
        self.got: list[Any] = []
        self.items: list[tuple[str, Any]] = []
        self.revoked: list[str] = []

    def push(self, update: Any) -> None:
        self.got.append(update)

    def push_item(self, stream: str, item: Any) -> None:
        self.items.append((stream, item))

    def revoke(self, reason: str) -> None:
        self.revoked.append(reason)


async def until(done: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def settled(*buses: NatsBus) -> None:
    """Every queued operation sent and the subscriptions made, on each bus."""
    for bus in buses:
        await until(lambda b=bus: b.connected and b._ops.empty(), "bus idle")
        assert bus._nc is not None
        await bus._nc.flush()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[NatsBus, NatsBus]]:
    with nats_server(tmp_path) as server:
        prefix = f"t{secrets.token_hex(4)}"
        a, b = NatsBus(server.url, prefix), NatsBus(server.url, prefix)
        await a.start()
        await b.start()
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()


def low(n: int, pts: int = 0) -> KeysLow:
    return KeysLow(pts=pts, one_time_keys=n)


async def test_an_update_reaches_the_users_devices_in_another_process(pair) -> None:
    a, b = pair
    here, there, other_user = Device(5, 50), Device(5, 51), Device(6, 60)
    a.attach(here)
    b.attach(there)
    b.attach(other_user)
    await settled(a, b)
    reached = a.deliver([Push(low(1), [(5, 7)])])
    assert reached == 1 and here.got == [low(1, 7)]  # the local fast path, at once
    await until(lambda: there.got, "remote push")
    assert there.got == [low(1, 7)] and other_user.got == []


async def test_a_process_is_not_sent_its_own_frames_back(pair) -> None:
    a, b = pair
    here, there = Device(5, 50), Device(5, 51)
    a.attach(here)
    b.attach(there)
    await settled(a, b)
    a.deliver([Push(low(1), [(5, 1)])])
    await until(lambda: there.got, "a's push at b")
    b.deliver([Push(low(2), [(5, 2)])])
    # b's frame reaches a after a's own would have, on the same subject
    await until(lambda: len(here.got) == 2, "b's push at a")
    assert here.got == [low(1, 1), low(2, 2)]
    assert a.stats["own"] == 0 and a.stats["received"] == 1


async def test_exclusions_by_session_hold_everywhere(pair) -> None:
    a, b = pair
    sender_elsewhere, same_session, other = Device(5, 50), Device(5, 50), Device(5, 52)
    b.attach(same_session)
    b.attach(other)
    a.attach(sender_elsewhere)
    await settled(a, b)
    a.deliver([Push(low(2), [(5, 3)])], exclude_session=50)
    await until(lambda: other.got, "push to the other session")
    assert same_session.got == [] and sender_elsewhere.got == []


async def test_pts_order_is_kept_for_a_user(pair) -> None:
    a, b = pair
    there = Device(9, 90)
    b.attach(there)
    await settled(a, b)
    for pts in range(1, 201):
        a.deliver([Push(low(pts), [(9, pts)])])
    await until(lambda: len(there.got) == 200, "200 pushes")
    assert [u.pts for u in there.got] == list(range(1, 201))


async def test_a_large_fan_out_goes_once_and_reaches_only_local_members(pair) -> None:
    a, b = pair
    members = [Device(100 + i, 1000 + i) for i in range(40)]
    for device in members[:20]:
        a.attach(device)
    for device in members[20:]:
        b.attach(device)
    await settled(a, b)
    published = a.stats["published"]
    a.deliver([Push(low(3), [(100 + i, i + 1) for i in range(40)])])
    await until(lambda: all(d.got for d in members[20:]), "fan-out")
    assert a.stats["published"] - published == 1
    assert [d.got[0].pts for d in members] == [i + 1 for i in range(40)]


async def test_streams_follows_revocations_and_sessions(pair) -> None:
    a, b = pair
    reader, old_client = Device(7, 70), Device(7, 71, reads_streams=False)
    b.attach(reader)
    b.attach(old_client)
    await settled(a, b)
    a.subscribe_user(7, "chat:3")  # user 7 joined a large chat, in a's process
    await until(lambda: b._local.streams_of(reader), "follow order")
    await settled(a, b)
    a.publish("chat:3", low(4, 1))
    await until(lambda: reader.items, "stream item")
    assert reader.items == [("chat:3", low(4, 1))] and old_client.items == []
    a.push_to_session(7, 71, low(5))
    await until(lambda: old_client.got, "push to one session")
    assert reader.got == []
    a.revoke_sessions(7, [70], "logged out")
    await until(lambda: reader.revoked, "revocation")
    assert reader.revoked == ["logged out"] and old_client.revoked == []


async def test_a_frame_nobody_can_read_is_dropped_and_the_bus_goes_on(pair) -> None:
    a, b = pair
    there = Device(5, 50)
    b.attach(there)
    await settled(a, b)
    assert a._nc is not None
    for junk in (b"\xff\x00garbage", msgspec.msgpack.encode({"origin": "x", "op": "nuke"}),
                 msgspec.msgpack.encode({"origin": "x", "op": "push", "update": 5})):
        await a._nc.publish(f"{a.prefix}.u.5", junk)
    a.deliver([Push(low(6), [(5, 1)])])
    await until(lambda: there.got, "the push after the junk")
    assert b.stats["malformed"] == 3


async def test_nats_away_at_start_then_back(tmp_path: Path) -> None:
    """A process whose NATS is down serves its own devices, and joins when NATS comes."""
    server = NatsServer(tmp_path, free_port())
    prefix = f"t{secrets.token_hex(4)}"
    a, b = NatsBus(server.url, prefix), NatsBus(server.url, prefix)
    await a.start()
    await b.start()
    try:
        here, there = Device(5, 50), Device(5, 51)
        a.attach(here)
        b.attach(there)
        assert a.deliver([Push(low(1), [(5, 1)])]) == 1 and here.got == [low(1, 1)]
        server.start()
        await settled(a, b)
        a.deliver([Push(low(2), [(5, 2)])])
        await until(lambda: low(2, 2) in there.got, "push once NATS is up")
    finally:
        await a.close()
        await b.close()
        server.kill()


async def test_a_server_on_the_nats_bus_says_so_and_degrades_without_it(tmp_path: Path,
                                                                        phone) -> None:
    """`pigeon serve --bus nats://...`: /healthz reports the bus; with NATS gone the server
    keeps serving its own devices (a message still goes from one to another)."""
    import aiohttp

    from pigeon.testing import ServerProcess, login

    with nats_server(tmp_path) as nats_srv, ServerProcess(
            tmp_path / "data", "--bus", nats_srv.url) as server:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                async with http.get(server.operator_url + "/healthz") as r:
                    health = await r.json()
                if health["bus"]["connected"]:
                    break
                await asyncio.sleep(0.02)
            assert health["status"] == "ok" and health["bus"]["kind"] == "nats"
            alice = await login(server, phone(), "Alice", username="alice_nats")
            bob = await login(server, phone(), "Bob", username="bob_nats")
            nats_srv.kill()
            for _ in range(200):
                async with http.get(server.operator_url + "/healthz") as r:
                    health = await r.json()
                if not health["bus"]["connected"]:
                    break
                await asyncio.sleep(0.02)
            assert health["status"] == "degraded"
        try:
            found = await alice.account.resolve_username("@bob_nats")
            chat = await alice.chats.open_private(found.id)
            await alice.messages.send(chat.id, "still here")
            page = await alice.messages.history(chat.id)
            assert [m.text for m in page] == ["still here"]
        finally:
            await alice.close()
            await bob.close()


class Revocations:
    """What a server's resumption map hears from its bus (shield/resumption.py)."""

    def __init__(self, bus: NatsBus) -> None:
        self.revoked: list[int] = []
        self.unsure = 0
        bus.on_revocations(self.revoked.extend, self._unsure)

    def _unsure(self) -> None:
        self.unsure += 1


async def test_a_revocation_reaches_every_process_even_without_the_users_devices(pair) -> None:
    """Each process checks resumption tickets against its own map of live sessions: a
    session ended through one must leave every other's map, not only those holding one of
    the user's devices (issue 13)."""
    a, b = pair
    heard = Revocations(b)
    await settled(a, b)
    assert b.revocations_current and a.revocations_current
    a.revoke_sessions(9, [90, 91], "terminated")  # no device of user 9 anywhere
    await until(lambda: heard.revoked, "the revocation in the other process")
    assert heard.revoked == [90, 91] and heard.unsure == 0
    # And a device of the user there is still cut off, after the map heard.
    device = Device(9, 92)
    b.attach(device)
    await settled(a, b)
    a.revoke_sessions(9, [92], "logged out")
    await until(lambda: device.revoked, "the device's revocation")
    assert heard.revoked == [90, 91, 92]


async def test_a_process_cut_off_from_nats_forgets_and_is_not_current(tmp_path: Path) -> None:
    """While NATS is away revocations made elsewhere cannot reach a process: it says it may
    have missed some (its server forgets every live session) and is not current until its
    subscription is back in force; a "forget" from a process whose own revocation could
    not get out makes the others forget too."""
    server = NatsServer(tmp_path, free_port())
    server.start()
    prefix = f"t{secrets.token_hex(4)}"
    a, b = NatsBus(server.url, prefix), NatsBus(server.url, prefix)
    heard_a, heard_b = Revocations(a), Revocations(b)
    await a.start()
    await b.start()
    try:
        await settled(a, b)
        assert a.revocations_current and b.revocations_current
        server.kill()
        await until(lambda: heard_a.unsure and heard_b.unsure, "both unsure")
        assert not a.revocations_current and not b.revocations_current
        server.start()  # the same port
        await until(lambda: a.revocations_current and b.revocations_current, "current again")
        await settled(a, b)
        # A process that could not get a revocation out says so once back: the others forget.
        before, before_a = heard_b.unsure, heard_a.unsure
        elsewhere = await nats.connect(server.url)  # a third process (ours are not echoed)
        await elsewhere.publish(f"{prefix}.revoke", msgspec.msgpack.encode(
            {"origin": "elsewhere", "op": "forget"}))
        await elsewhere.close()
        await until(lambda: heard_b.unsure > before and heard_a.unsure > before_a,
                    "both told to forget")
    finally:
        await a.close()
        await b.close()
        server.kill()
