"""The SDK's update ordering and hole filling, driven without a network.

The client's transport is replaced by a stand-in server that answers get_difference from a
list of updates, so the property under test is the client's own: whatever order pushes
arrive in, and whatever is lost, ``updates()`` yields every pts once, in order.
"""

import asyncio

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.client import Client, Profile
from pigeon.client import client as client_module
from pigeon.protocol.types import Message, State
from pigeon.protocol.updates import Difference, NewMessage


def update(pts: int) -> NewMessage:
    return NewMessage(pts=pts, message=Message(chat_id=1, id=pts, sender_id=2, date=0.0,
                                               text=f"m{pts}"))


class StandInClient(Client):
    def __init__(self, log: list[NewMessage]) -> None:
        super().__init__("ws://127.0.0.1:9", Profile())
        self.log = log
        self.differences = 0

    async def call(self, method, params):
        assert method == "updates.get_difference"
        self.differences += 1
        after = [u for u in self.log if u.pts > params.pts][:7]  # small pages: exercise `more`
        last = after[-1].pts if after else params.pts
        return Difference(updates=after, state=State(pts=last, date=0.0),
                          more=last < len(self.log))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), data=st.data())
def test_every_update_once_in_order_whatever_arrives(n, data):
    log = [update(p) for p in range(1, n + 1)]
    pushed = data.draw(st.lists(st.sampled_from(log), max_size=2 * n))  # lost, repeated, shuffled

    async def run() -> list[int]:
        client = StandInClient(log)
        for u in pushed:
            client._accept([u])
        await client.sync()  # what the client does on reconnect or a lasting hole
        await asyncio.sleep(0.05)
        seen = []
        while client.pending_updates():
            seen.append((await client._queue.get()).pts)
        return seen

    assert asyncio.run(run()) == list(range(1, n + 1))


@pytest.fixture(autouse=True)
def short_gap_wait(monkeypatch):
    monkeypatch.setattr(client_module, "GAP_WAIT", 0.01)


def test_a_hole_is_filled_by_itself():
    log = [update(p) for p in range(1, 6)]

    async def run():
        client = StandInClient(log)
        client._accept([log[0], log[3]])  # 2 and 3 were lost on the way
        seen = []
        async def collect():
            async for u in client.updates():
                seen.append(u.pts)
                if len(seen) == 4:
                    return
        await asyncio.wait_for(collect(), 5)
        return seen, client.differences

    seen, differences = asyncio.run(run())
    assert seen == [1, 2, 3, 4] and differences >= 1
