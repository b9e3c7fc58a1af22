"""The in-process bus's stream subscriptions: publish reaches the sinks that follow a stream,
in the order they subscribed, except the session excluded; unsubscribe and detach end it."""

from __future__ import annotations

from typing import Any

from pigeon.bus import LocalBus


class FakeSink:
    def __init__(self, user_id: int, session_id: int) -> None:
        self.user_id, self.session_id = user_id, session_id
        self.items: list[tuple[str, Any]] = []
        self.updates: list[Any] = []

    def push(self, update: Any) -> None:
        self.updates.append(update)

    def push_item(self, stream: str, item: Any) -> None:
        self.items.append((stream, item))

    def revoke(self, reason: str) -> None:
        raise AssertionError("not revoked here")


def test_publish_reaches_followers_except_the_excluded_session() -> None:
    bus = LocalBus()
    a1, a2, b1, c1 = FakeSink(1, 11), FakeSink(1, 12), FakeSink(2, 21), FakeSink(3, 31)
    for sink in (a1, a2, b1, c1):
        bus.attach(sink)
    for sink in (a1, a2, b1):
        bus.subscribe(sink, "chat:5")
    bus.subscribe(c1, "chat:6")
    assert bus.publish("chat:5", "m1") == 3
    assert bus.publish("chat:5", "m2", exclude_session=12) == 2
    assert bus.publish("chat:7", "nobody follows") == 0
    assert a1.items == [("chat:5", "m1"), ("chat:5", "m2")]
    assert a2.items == [("chat:5", "m1")]
    assert c1.items == [] and a1.updates == []  # items are not user-stream pushes


def test_unsubscribe_and_detach_end_a_subscription() -> None:
    bus = LocalBus()
    a, b = FakeSink(1, 11), FakeSink(2, 21)
    for sink in (a, b):
        bus.attach(sink)
        bus.subscribe(sink, "chat:5")
        bus.subscribe(sink, "chat:6")
    bus.unsubscribe(a, "chat:5")
    bus.unsubscribe(a, "chat:404")  # never followed: nothing happens
    assert bus.publish("chat:5", "x") == 1 and a.items == []
    bus.detach(b)
    assert bus.publish("chat:5", "y") == 0
    assert bus.publish("chat:6", "z") == 1 and a.items == [("chat:6", "z")]
    bus.detach(a)
    assert bus.publish("chat:6", "w") == 0
