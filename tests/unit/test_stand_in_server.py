"""``pigeon.testing``'s in-memory transport: the SDK, through its public API, against a
stand-in server written in the test (no socket, no private member)."""

import asyncio

import pytest

from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound
from pigeon.protocol.types import User
from pigeon.testing import StandInServer, memory_transport_pair


def test_a_memory_pair_carries_frames_in_order_and_closes_both_ends():
    async def run():
        client_end, server_end = memory_transport_pair()
        await client_end.send_bytes(b"one")
        await client_end.send_bytes(b"two")
        await server_end.close()
        got = [m.data async for m in server_end]
        with pytest.raises(ConnectionResetError):
            await client_end.send_bytes(b"three")
        return got, client_end.closed

    assert asyncio.run(run()) == ([b"one", b"two"], True)


def test_calls_get_answers_and_typed_errors_and_survive_a_drop():
    me = User(id=7, name="Ada")

    def answer(method, params):
        if method == "users.get":
            return [me] if list(params.ids) == [7] else []
        raise NotFound("no such thing")

    async def run():
        server = StandInServer(answer, user=me)
        client = await Client("ws://stand-in", Profile(), transport=server.transport,
                              max_backoff=0.05).connect()
        first = await client.call("users.get", m.GetUsers(ids=[7]))
        with pytest.raises(NotFound):
            await client.call("chats.get", m.GetChat(chat_id=1))
        await server.drop()  # as a server restart: the SDK reconnects and asks again
        second = await asyncio.wait_for(client.call("users.get", m.GetUsers(ids=[7])), 10)
        await client.close()
        await server.close()
        return first, second, client.reconnects, len(server.connections)

    first, second, reconnects, connections = asyncio.run(run())
    assert first == second == [me]
    assert reconnects >= 1 and connections >= 2


def test_after_an_unannounced_drop_the_sdk_spreads_its_return_over_the_servers_window(
        monkeypatch):
    """A crash warns nobody: the SDK tries once at once; when that fails, it waits its own
    pick in the window its last welcome gave (issue 13), and only once per outage."""
    import pigeon.client.client as client_module

    picks: list[float | None] = []

    def pick(window):
        picks.append(window)
        return 0.3

    monkeypatch.setattr(client_module, "outage_wait", pick)

    async def run():
        server = StandInServer(lambda method, params: [], user=User(id=7, name="Ada"),
                               reconnect_window=12.5)
        loop = asyncio.get_running_loop()
        attempts: list[float] = []
        refuse = [0]

        async def transport(url):
            attempts.append(loop.time())
            if refuse[0]:
                refuse[0] -= 1
                raise ConnectionRefusedError("the server is down")
            return await server.transport(url)

        client = await Client("ws://stand-in", Profile(), transport=transport,
                              max_backoff=0.01).connect()
        refuse[0] = 2  # down for the next two attempts
        await server.drop()

        async def back() -> None:  # idle: no call waiting (one would come back sooner)
            while client.reconnects < 1:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(back(), 10)
        await client.close()
        await server.close()
        return attempts, client.reconnects

    attempts, reconnects = asyncio.run(run())
    assert picks == [12.5]  # one pick, in the welcome's window, after the first failure
    assert len(attempts) == 4 and reconnects == 1
    assert attempts[2] - attempts[1] >= 0.3  # not before its pick


def test_a_device_with_a_call_waiting_says_so_and_does_not_sit_out_its_slot():
    """A server taking back a herd turns sockets away with a slot to come back at (503
    Retry-After, shield/pacing.py); a device whose user is waiting on a call comes back
    sooner and says so (``?waiting=1``), which that server lets in (issue 13)."""
    from pigeon.client.link import ServerUnreachable

    async def run():
        server = StandInServer(lambda method, params: [], user=User(id=7, name="Ada"),
                               reconnect_window=0.0)
        urls: list[str] = []
        refuse = [0]

        async def transport(url):
            urls.append(url)
            if refuse[0]:
                refuse[0] -= 1
                slot = ServerUnreachable("turned away: come back in 30 s", retry_after=30.0)
                slot.retryable_connect = True
                raise slot
            return await server.transport(url)

        client = await Client("ws://stand-in", Profile(), transport=transport,
                              max_backoff=0.01).connect()
        refuse[0] = 1
        await server.drop()
        answer = await asyncio.wait_for(client.call("users.get", m.GetUsers(ids=[7])), 20)
        await client.close()
        await server.close()
        return urls, answer

    urls, answer = asyncio.run(run())
    assert answer == [] and len(urls) == 3
    assert urls[0] == "ws://stand-in/v1/ws" and urls[-1] == "ws://stand-in/v1/ws?waiting=1"
