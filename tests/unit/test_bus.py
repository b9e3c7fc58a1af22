"""The Bus contract (bus/base.py), run against every implementation in ``BUSES``: a shared
bus (issue 12) joins the list and must pass the same tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.bus import Bus, LocalBus
from pigeon.store.base import Push



def NatsBusLocalPath() -> Bus:
    """The NATS bus, never started: what it delivers in its own process, at once, must
    keep the contract by itself (tests/integration/test_nats_bus.py covers the network)."""
    from pigeon.bus.nats import NatsBus

    return NatsBus("nats://127.0.0.1:1", "contract")


BUSES: list[Callable[[], Bus]] = [LocalBus, NatsBusLocalPath]


class Device:
    """A sink that writes down what reaches it."""

    def __init__(self, user_id: int, session_id: int, sink_id: int,
                 reads_streams: bool = True) -> None:
        self.user_id: int | None = user_id
        self.session_id: int | None = session_id
        self.sink_id = sink_id
        self.reads_streams = reads_streams
        self.got: list[tuple[str, Any]] = []
        self.revoked: list[str] = []

    def push(self, update: Any) -> None:
        self.got.append((f"user:{self.user_id}", update))

    def push_item(self, stream: str, item: Any) -> None:
        self.got.append((stream, item))

    def revoke(self, reason: str) -> None:
        self.revoked.append(reason)


class Note(msgspec.Struct, frozen=True):
    text: str
    pts: int = 0


@pytest.fixture(params=BUSES, ids=lambda make: make.__name__)
def bus(request: pytest.FixtureRequest) -> Bus:
    return request.param()


_sink_ids = iter(range(1, 10**9))


def online(bus: Bus, user_id: int, session_id: int, reads_streams: bool = True) -> Device:
    device = Device(user_id, session_id, next(_sink_ids), reads_streams)
    bus.attach(device)
    return device


def test_publish_reaches_subscribers_only(bus: Bus) -> None:
    a, b, c = online(bus, 1, 10), online(bus, 2, 20), online(bus, 3, 30)
    bus.subscribe(a, "chat:5")
    bus.subscribe(b, "chat:5")
    bus.subscribe(c, "chat:6")
    assert bus.publish("chat:5", Note("hi", 1)) == 2
    assert a.got == b.got == [("chat:5", Note("hi", 1))]
    assert c.got == []
    assert bus.publish("chat:7", Note("nobody")) == 0


def test_publish_excludes_by_session_id_not_object(bus: Bus) -> None:
    sender, other_device, friend = online(bus, 1, 10), online(bus, 1, 11), online(bus, 2, 20)
    for device in (sender, other_device, friend):
        bus.subscribe(device, "chat:5")
    # The exclusion names a session: any object standing for it is left out, even one that
    # is not the object the caller holds (another worker's view of the same device).
    assert bus.publish("chat:5", Note("mine", 1), exclude_session=10) == 2
    assert sender.got == []
    assert [s for s, _ in other_device.got] == [s for s, _ in friend.got] == ["chat:5"]


def test_exclusion_by_sink_id_leaves_out_one_connection_of_a_session(bus: Bus) -> None:
    # Two processes on one profile share a session: the one that called has its answer,
    # the other still needs the push to keep its position moving.
    caller, follower = online(bus, 1, 10), online(bus, 1, 10)
    bus.subscribe(caller, "chat:5")
    bus.subscribe(follower, "chat:5")
    assert bus.publish("chat:5", Note("x", 1), exclude_sink=caller.sink_id) == 1
    push = Push(update=Note("m"), targets=[(1, 3)])
    assert bus.deliver([push], exclude_sink=caller.sink_id) == 1
    assert caller.got == []
    assert follower.got == [("chat:5", Note("x", 1)), ("user:1", Note("m", 3))]


def test_unsubscribe_and_detach_stop_stream_items(bus: Bus) -> None:
    a, b = online(bus, 1, 10), online(bus, 2, 20)
    bus.subscribe(a, "chat:5")
    bus.subscribe(b, "chat:5")
    bus.unsubscribe(a, "chat:5")
    bus.unsubscribe(a, "chat:5")  # twice is harmless
    bus.detach(b)
    assert bus.publish("chat:5", Note("x", 1)) == 0
    assert a.got == b.got == []
    assert bus.connection_count() == 1


def test_subscribing_a_user_reaches_their_devices_that_read_streams(bus: Bus) -> None:
    # Someone joins a large chat: every device of theirs that reads streams follows it; a
    # version-1 device is not sent items it cannot place. Leaving ends it for all of them.
    a1, a2 = online(bus, 1, 10), online(bus, 1, 11)
    old, other = online(bus, 1, 12, reads_streams=False), online(bus, 2, 20)
    bus.subscribe_user(1, "chat:5")
    assert bus.publish("chat:5", Note("in", 1)) == 2
    assert a1.got == a2.got == [("chat:5", Note("in", 1))]
    assert old.got == other.got == []
    bus.unsubscribe_user(1, "chat:5")
    bus.subscribe_user(3, "chat:5")  # nobody of theirs online: nothing happens
    assert bus.publish("chat:5", Note("out", 2)) == 0


def test_deliver_stamps_each_users_pts_and_excludes_the_senders_session(bus: Bus) -> None:
    phone, laptop, friend = online(bus, 1, 10), online(bus, 1, 11), online(bus, 2, 20)
    push = Push(update=Note("m"), targets=[(1, 7), (2, 3), (9, 1)])  # user 9 is offline
    assert bus.deliver([push], exclude_session=10) == 2
    assert phone.got == []
    assert laptop.got == [("user:1", Note("m", 7))]
    assert friend.got == [("user:2", Note("m", 3))]


def test_deliver_without_exclusion_reaches_every_device(bus: Bus) -> None:
    devices = [online(bus, 1, 10), online(bus, 1, 11)]
    assert bus.deliver([Push(update=Note("m"), targets=[(1, 4)])]) == 2
    assert all(d.got == [("user:1", Note("m", 4))] for d in devices)


def test_push_to_one_session(bus: Bus) -> None:
    phone, laptop = online(bus, 1, 10), online(bus, 1, 11)
    assert bus.push_to_session(1, 11, Note("only you", 2)) == 1
    assert phone.got == [] and laptop.got == [("user:1", Note("only you", 2))]
    assert bus.push_to_session(1, 99, Note("nobody")) == 0
    assert bus.push_to_session(2, 11, Note("wrong user")) == 0  # a session is its user's


def test_revoke_sessions_of_one_user(bus: Bus) -> None:
    phone, laptop, stranger = online(bus, 1, 10), online(bus, 1, 11), online(bus, 2, 10)
    bus.revoke_sessions(1, [10], "logged out")
    assert phone.revoked == ["logged out"]
    assert laptop.revoked == stranger.revoked == []


def test_ephemeral_and_counts(bus: Bus) -> None:
    a, b = online(bus, 1, 10), online(bus, 1, 11)
    online(bus, 2, 20)
    bus.deliver_ephemeral([1], Note("typing"))
    assert a.got == b.got == [("user:1", Note("typing"))]
    assert bus.online_devices(1) == 2 and bus.online_devices(3) == 0
    assert bus.connection_count() == 3
    bus.detach(a)
    bus.detach(a)
    assert bus.online_devices(1) == 1 and bus.connection_count() == 2


# Ordering: whatever interleaving of publishes to streams and pushes to users, every device
# receives exactly what was addressed to it, in the order it was sent.
_exclusion = st.none() | st.tuples(st.sampled_from(["session", "sink"]), st.integers(0, 4))
_op = st.tuples(st.sampled_from(["publish", "deliver"]), st.integers(1, 3), _exclusion)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(_op, max_size=40),
       follows=st.lists(st.sets(st.integers(1, 3)), min_size=5, max_size=5))
def test_every_device_gets_its_items_in_order(
        ops: list[tuple[str, int, tuple[str, int] | None]], follows: list[set[int]]) -> None:
    for make in BUSES:
        bus = make()
        # Users 1, 1, 2, 3, 3; the two of user 1 share one session (one profile, two
        # processes), those of user 3 have one each.
        devices = [online(bus, user, session) for user, session in
                   [(1, 10), (1, 10), (2, 11), (3, 12), (3, 13)]]
        for device, chats in zip(devices, follows, strict=True):
            for chat in chats:
                bus.subscribe(device, f"chat:{chat}")
        expected: dict[int, list[tuple[str, Any]]] = {d.sink_id: [] for d in devices}
        for n, (kind, target, exclusion) in enumerate(ops, start=1):
            session = sink = None
            if exclusion is not None and exclusion[0] == "session":
                session = devices[exclusion[1]].session_id
            elif exclusion is not None:
                sink = devices[exclusion[1]].sink_id
            if kind == "publish":
                stream = f"chat:{target}"
                bus.publish(stream, Note(str(n), n), exclude_session=session, exclude_sink=sink)
                reached = [d for d, chats in zip(devices, follows, strict=True) if target in chats]
            else:
                stream = f"user:{target}"
                bus.deliver([Push(update=Note(str(n)), targets=[(target, n)])],
                            exclude_session=session, exclude_sink=sink)
                reached = [d for d in devices if d.user_id == target]
            for device in reached:
                if device.session_id != session and device.sink_id != sink:
                    expected[device.sink_id].append((stream, Note(str(n), n)))
        assert {d.sink_id: d.got for d in devices} == expected
