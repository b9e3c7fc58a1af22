"""client.inbox, the router of a device's inbox, against a stand-in for the server and the
Olm machine: handlers by payload type, acknowledgement only after handlers and hooks,
nothing acknowledged when a handler fails, undecryptable envelopes reported and a renewal
asked at most once per device per period, pushed envelopes processed in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from pigeon.client.devices import DeviceMessage
from pigeon.client.inbox import RENEW_EVERY, Inbox, InboxGap, Incoming
from pigeon.crypto.payloads import (
    Renew, RoomKey, SecretText, encode_payload, read_payload,
)
from pigeon.protocol.keys import DeviceKeys, IdentityKeys
from pigeon.protocol.streams import Item, StreamDifference, StreamItem
from pigeon.protocol.updates import Envelope

STREAM = "device:7"


def envelope(seq: int, body: bytes | None, sender: int = 3) -> Envelope:
    # type 1 carries a readable body in this stand-in; type 9 is "cannot decrypt"
    return Envelope(pts=seq, sender_id=1, sender_device=sender, type=1 if body else 9,
                    ciphertext=body or b"garbage")


class Devices:
    device_id = 7

    def __init__(self) -> None:
        self.saved = 0
        self.renewed: list[tuple[int, Any]] = []
        self.inbox_seq = 0

    @contextlib.asynccontextmanager
    async def decrypting(self, envelopes: list[tuple[int, Envelope]], reached: int = 0
                         ) -> AsyncIterator[list[DeviceMessage]]:
        # type 1: readable; 8: a copy of one read; anything else: cannot decrypt
        yield [DeviceMessage(e.sender_id, e.sender_device, seq,
                             e.ciphertext if e.type == 1 else None,
                             None if e.type == 1 else "cannot decrypt (altered)",
                             duplicate=e.type == 8)
               for seq, e in envelopes]
        self.inbox_seq = max([self.inbox_seq, reached, *(seq for seq, _ in envelopes)])
        self.saved += 1

    def known(self, device_id: int) -> DeviceKeys:
        return DeviceKeys(user_id=1, device_id=device_id, name="d", identity=IdentityKeys(
            curve25519="c", ed25519="e", signature="s"))

    async def renew(self, target: DeviceKeys, body: bytes) -> int:
        self.renewed.append((target.device_id, read_payload(body)))
        return 1


class Client:
    e2e_guard = staticmethod(contextlib.nullcontext)

    def __init__(self, waiting: list[tuple[int, Envelope]], head: int = 0) -> None:
        self.devices = Devices()
        self.waiting = waiting
        self.head = head  # the stream's last position (items after the last may be gone)
        self.acked: list[int] = []
        self.log: list[str] = []
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)

    async def call(self, method: str, params: Any) -> Any:
        if method == "updates.get_stream_difference":
            items = [Item(stream=STREAM, seq=seq, body=msgspec.Raw(msgspec.msgpack.encode(e)))
                     for seq, e in self.waiting if seq > params.seq]
            return StreamDifference(stream=STREAM, items=items,
                                    seq=max([params.seq, self.head, *(i.seq for i in items)]))
        assert method == "updates.ack_stream"
        self.log.append(f"ack {params.seq}")
        self.acked.append(params.seq)
        self.waiting = [(s, e) for s, e in self.waiting if s > params.seq]
        return None


def text(n: int) -> bytes:
    return encode_payload(SecretText(chat_id=1, message_id=f"{n:016x}", text=f"t{n}",
                                     sent_at=1))


async def test_handlers_by_type_then_hooks_then_the_ack() -> None:
    client = Client([(1, envelope(1, text(1))),
                     (2, envelope(2, encode_payload(RoomKey(chat_id=1, session_id="s",
                                                            session_key="k")))),
                     (3, envelope(3, msgspec.msgpack.encode({"p": "future.thing"}))),
                     (4, envelope(4, text(4)))])
    inbox = Inbox(client)  # type: ignore[arg-type]
    got: list[Any] = []

    async def on_text(message: Incoming) -> None:
        client.log.append(f"text {message.seq}")
        got.append(message.payload)

    async def on_key(message: Incoming) -> None:
        client.log.append(f"key {message.seq}")

    async def hook() -> None:
        client.log.append("hook")

    inbox.on(SecretText, on_text)
    inbox.on(RoomKey, on_key)
    inbox.before_ack(hook)
    assert await inbox.receive() == 4
    assert client.log == ["text 1", "key 2", "text 4", "hook", "ack 4"]
    assert [p.text for p in got] == ["t1", "t4"]
    assert inbox.unhandled == 1 and client.devices.saved == 1
    assert await inbox.receive() == 0 and client.acked == [4]


async def test_a_failing_handler_acknowledges_nothing() -> None:
    client = Client([(1, envelope(1, text(1)))])
    inbox = Inbox(client)  # type: ignore[arg-type]

    async def broken(message: Incoming) -> None:
        raise OSError("disk full")

    inbox.on(SecretText, broken)
    with pytest.raises(OSError):
        await inbox.receive()
    assert client.acked == [] and client.devices.saved == 0


async def test_undecryptable_is_reported_and_renewed_once_per_period() -> None:
    now = [100.0]
    client = Client([(1, envelope(1, None)), (2, envelope(2, None)),
                     (3, envelope(3, None, sender=4))])
    inbox = Inbox(client, clock=lambda: now[0])  # type: ignore[arg-type]
    failed: list[DeviceMessage] = []

    async def on_failure(message: DeviceMessage) -> None:
        failed.append(message)

    inbox.on_undecryptable(on_failure)
    await inbox.receive()
    assert [m.seq for m in failed] == [1, 2, 3] and inbox.undecryptable == 3
    assert [(d, type(p)) for d, p in client.devices.renewed] == [(3, Renew), (4, Renew)]
    client.waiting = [(4, envelope(4, None))]
    await inbox.receive()
    assert len(client.devices.renewed) == 2  # device 3 asked already, within the period
    now[0] += RENEW_EVERY
    client.waiting = [(5, envelope(5, None))]
    await inbox.receive()
    assert len(client.devices.renewed) == 3


async def test_later_actions_run_after_the_ack() -> None:
    client = Client([(1, envelope(1, text(1)))])
    inbox = Inbox(client)  # type: ignore[arg-type]

    async def reply() -> None:
        client.log.append("reply")

    async def on_text(message: Incoming) -> None:
        message.later(reply)

    inbox.on(SecretText, on_text)
    await inbox.receive()
    assert client.log == ["ack 1", "reply"]


async def test_pushed_envelopes_in_order_and_a_hole_fetches_the_difference() -> None:
    client = Client([(1, envelope(1, text(1)))])
    inbox = Inbox(client)  # type: ignore[arg-type]
    seen: list[int] = []

    async def on_text(message: Incoming) -> None:
        seen.append(message.seq)

    inbox.on(SecretText, on_text)
    inbox.follow()  # catches up first
    await inbox.idle()
    assert seen == [1]
    for seq in (2, 3):
        client.waiting.append((seq, envelope(seq, text(seq))))
        inbox.pushed(StreamItem(STREAM, seq, envelope(seq, text(seq))))
    await inbox.idle()
    # 4 is lost on its way: 5 alone is a hole, read from the server instead.
    client.waiting += [(4, envelope(4, text(4))), (5, envelope(5, text(5)))]
    inbox.pushed(StreamItem(STREAM, 5, envelope(5, text(5))))
    inbox.pushed(StreamItem(STREAM, 2, envelope(2, text(2))))  # a stale copy: ignored
    await inbox.idle()
    assert seen == [1, 2, 3, 4, 5]
    assert client.acked[-1] == 5


async def test_idle_returns_at_once_when_nothing_runs() -> None:
    inbox = Inbox(Client([]))  # type: ignore[arg-type]
    await asyncio.wait_for(inbox.idle(), 1)


async def test_what_the_server_purged_unread_is_reported_once() -> None:
    """Positions 1-2 and 5-6 of the inbox are gone (past the server's retention): one
    InboxGap says four envelopes were lost; read again, nothing more is reported."""
    client = Client([(3, envelope(3, text(3))), (4, envelope(4, text(4)))], head=6)
    inbox = Inbox(client)  # type: ignore[arg-type]
    inbox.on(SecretText, _ignore)
    assert await inbox.receive() == 2
    assert client.events == [InboxGap(count=4, first=1, last=6)]
    assert inbox.lost == 4 and client.acked == [6]
    client.head = 9  # all three after it gone too
    await inbox.receive()
    assert client.events[1:] == [InboxGap(count=3, first=7, last=9)]
    await inbox.receive()
    assert len(client.events) == 2


async def test_a_copy_of_a_read_envelope_is_skipped_without_a_renewal() -> None:
    copy = Envelope(pts=2, sender_id=1, sender_device=3, type=8, ciphertext=b"x")
    client = Client([(1, envelope(1, text(1))), (2, copy)])
    inbox = Inbox(client)  # type: ignore[arg-type]
    failed: list[DeviceMessage] = []

    async def on_failure(message: DeviceMessage) -> None:
        failed.append(message)

    inbox.on(SecretText, _ignore)
    inbox.on_undecryptable(on_failure)
    await inbox.receive()
    assert failed == [] and client.devices.renewed == []
    assert inbox.duplicates == 1 and inbox.undecryptable == 0 and client.acked == [2]


async def test_a_new_login_reads_its_new_inbox_from_the_start() -> None:
    client = Client([(1, envelope(1, text(1))), (2, envelope(2, text(2)))])
    inbox = Inbox(client)  # type: ignore[arg-type]
    seen: list[int] = []

    async def on_text(message: Incoming) -> None:
        seen.append(message.seq)

    inbox.on(SecretText, on_text)
    await inbox.receive()
    # Logged out and in again: another device, whose inbox starts at 1 again.
    client.devices = Devices()
    client.waiting = [(1, envelope(1, text(5)))]
    inbox.signed_in()
    await inbox.receive()
    assert seen == [1, 2, 1] and client.events == []


async def _ignore(message: Incoming) -> None:
    pass
