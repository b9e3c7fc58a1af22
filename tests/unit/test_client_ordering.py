"""The SDK's update ordering and hole filling, driven without a network.

The client is connected to a stand-in server in memory (``pigeon.testing.StandInServer``)
that pushes what the test says and answers the difference from a list of updates, so the
property under test is the client's own, through its public API: whatever order pushes
arrive in, and whatever is lost, ``updates()`` yields every pts once, in order.
"""

import asyncio

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.client import Client, Profile
from pigeon.client import ordering
from pigeon.protocol.streams import Item, StreamDifference, item
from pigeon.protocol.types import Message, State
from pigeon.protocol.updates import Difference, NewMessage
from pigeon.testing import StandInServer


def update(pts: int) -> NewMessage:
    return NewMessage(pts=pts, message=Message(chat_id=1, id=pts, sender_id=2, date=0.0,
                                               text=f"m{pts}"))


def difference_server(log: list[NewMessage]) -> StandInServer:
    """Version 1: answers get_difference from ``log``, in small pages (exercises ``more``)."""

    def answer(method, params):
        assert method == "updates.get_difference"
        after = [u for u in log if u.pts > params.pts][:7]
        last = after[-1].pts if after else params.pts
        return Difference(updates=after, state=State(pts=last, date=0.0), more=last < len(log))

    return StandInServer(answer)


async def connect(server: StandInServer, profile: Profile, **options) -> Client:
    return await Client("ws://stand-in", profile, transport=server.transport,
                        **options).connect()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), data=st.data())
def test_every_update_once_in_order_whatever_arrives(n, data):
    log = [update(p) for p in range(1, n + 1)]
    pushed = data.draw(st.lists(st.sampled_from(log), max_size=2 * n))  # lost, repeated, shuffled

    async def run() -> list[int]:
        server = difference_server(log)
        client = await connect(server, Profile(), versions=(1,))
        for u in pushed:
            await server.push([u])
        await client.sync()  # what the client does on reconnect or a lasting hole
        seen = [u.pts for u in client.take_updates()]
        await client.close()
        await server.close()
        return seen

    assert asyncio.run(run()) == list(range(1, n + 1))


@pytest.fixture(autouse=True)
def short_gap_wait(monkeypatch):
    monkeypatch.setattr(ordering, "GAP_WAIT", 0.01)


def test_a_hole_is_filled_by_itself():
    log = [update(p) for p in range(1, 6)]

    async def run():
        server = difference_server(log)
        client = await connect(server, Profile(), versions=(1,))
        await server.push([log[0], log[3]])  # 2 and 3 were lost on the way
        seen = []

        async def collect():
            async for u in client.updates():
                seen.append(u.pts)
                if len(seen) == 4:
                    return
        await asyncio.wait_for(collect(), 5)
        await client.close()
        return seen, len(server.calls)

    seen, differences = asyncio.run(run())
    assert seen == [1, 2, 3, 4] and differences >= 1


# -- protocol version 2: stream items, some of a type this SDK does not know -----------------
STREAM = "user:5"


def item_of(seq: int, unknown: bool) -> Item:
    """The item at ``seq`` on the wire: a message, or an update of a type no version of
    this SDK knows (a later protocol version's)."""
    body = ({"u": "x_reaction", "pts": seq, "emoji": "\U0001f426"} if unknown
            else update(seq))
    return item(STREAM, seq, body)


def stream_server(log: list[Item]) -> StandInServer:
    """Version 2: answers get_stream_difference from the stream's items, a few at a time."""

    def answer(method, params):
        assert method == "updates.get_stream_difference" and params.stream == STREAM
        after = [i for i in log if i.seq > params.seq][:7]
        last = after[-1].seq if after else params.seq
        return StreamDifference(stream=STREAM, items=after, seq=last, more=last < len(log))

    return StandInServer(answer)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.booleans(), min_size=1, max_size=40), data=st.data())
def test_unknown_updates_are_skipped_and_the_stream_moves_past_them(kinds, data):
    log = [item_of(seq, unknown) for seq, unknown in enumerate(kinds, start=1)]
    pushed = data.draw(st.lists(st.sampled_from(log), max_size=2 * len(log)))

    async def run() -> tuple[list[int], int, int, int]:
        server = stream_server(log)
        client = await connect(server, Profile(user_id=5))
        if pushed:
            await server.push_items(pushed)
        await client.sync()
        seen = [u.pts for u in client.take_updates()]
        await client.close()
        await server.close()
        return seen, client.profile.pts, client.skipped_updates, client.version

    seen, position, skipped, version = asyncio.run(run())
    assert version == 2
    assert seen == [seq for seq, unknown in enumerate(kinds, start=1) if not unknown]
    assert position == len(log)  # past every item, read or not
    assert skipped == sum(kinds)  # each unknown one skipped, once


def test_a_hole_of_unknown_updates_is_filled_and_skipped():
    log = [item_of(1, False), item_of(2, True), item_of(3, True), item_of(4, False)]

    async def run():
        server = stream_server(log)
        client = await connect(server, Profile(user_id=5))
        await server.push_items([log[0], log[3]])  # 2 and 3 were lost
        seen = []

        async def collect():
            async for u in client.updates():
                seen.append(u.pts)
                if len(seen) == 2:
                    return
        await asyncio.wait_for(collect(), 5)
        await client.close()
        return seen, client.profile.pts, client.skipped_updates, len(server.calls)

    seen, position, skipped, differences = asyncio.run(run())
    assert (seen, position, skipped) == ([1, 4], 4, 2) and differences >= 1


CHAT_STREAM = "chat:9"


def chat_item(stream: str, seq: int) -> Item:
    chat_id = 9 if stream == CHAT_STREAM else 1
    return item(stream, seq, NewMessage(pts=seq, message=Message(
        chat_id=chat_id, id=seq, sender_id=2, date=0.0, text=f"{stream} {seq}")))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(own=st.integers(1, 15), chat=st.integers(1, 15), data=st.data())
def test_two_streams_interleaved_each_in_order_once(own, chat, data, monkeypatch):
    """Items of two streams, shuffled, repeated and cut into frames anywhere: each stream's
    arrive in order, once, whether the next one came (delivered at once) or waited for a
    hole before it to fill (held back), however the other stream fares meanwhile."""
    monkeypatch.setattr(ordering, "GAP_WAIT", 60.0)  # no sync: pushes alone fill holes
    log = ([chat_item(STREAM, seq) for seq in range(1, own + 1)]
           + [chat_item(CHAT_STREAM, seq) for seq in range(1, chat + 1)])
    pushed = data.draw(st.permutations(log)) + data.draw(st.lists(st.sampled_from(log),
                                                                  max_size=5))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(pushed)), max_size=6)))

    async def run() -> list[tuple[int, int]]:
        server = StandInServer()
        client = await connect(server, Profile(user_id=5))
        for start, end in zip([0, *cuts], [*cuts, len(pushed)], strict=True):
            if end > start:
                await server.push_items(pushed[start:end])
        seen: list[tuple[int, int]] = []
        async with asyncio.timeout(5):
            while len(seen) < own + chat:
                seen += [(u.message.chat_id, u.pts) for u in client.take_updates()]
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # a repeat arriving late must not be delivered again
        seen += [(u.message.chat_id, u.pts) for u in client.take_updates()]
        await client.close()
        await server.close()
        return seen

    seen = asyncio.run(run())
    assert [seq for chat_id, seq in seen if chat_id == 1] == list(range(1, own + 1))
    assert [seq for chat_id, seq in seen if chat_id == 9] == list(range(1, chat + 1))
