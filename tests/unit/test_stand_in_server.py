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
