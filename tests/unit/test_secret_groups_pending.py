"""client.secret_groups without a server: devices wired to each other in memory (the Olm
layer is client.devices' own, tested elsewhere). A message that arrives before its key is
kept as pending, then decrypted when the key comes; a missing key is asked for once, and
re-shared to an entitled device only."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest
from typing import Any

from pigeon.client.devices import DeviceMessage
from pigeon.client.secret_groups import SecretGroups
from pigeon.client.inbox import Incoming
from pigeon.crypto.megolm import RotationPolicy
from pigeon.crypto.payloads import Renew, RoomKey, RoomKeyRequest, read_payload
from pigeon.crypto.vault import Vault
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.keys import DeviceKeys, IdentityKeys
from pigeon.protocol.types import Member, Message, SentMessage, User

CHAT = 5


class Net:
    """Who is in the group, every device's inbox, and the chat's messages."""

    def __init__(self) -> None:
        self.members: set[int] = set()
        self.devices: dict[int, int] = {}             # device -> user
        self.inboxes: dict[int, list[DeviceMessage]] = {}
        self.messages: list[Message] = []


class FakeDevices:
    def __init__(self, net: Net, user_id: int, device_id: int) -> None:
        self.net, self.user_id, self.device_id = net, user_id, device_id
        self.vault = Vault(None, b"s" * 16, secrets.token_bytes(64))
        self.is_open = True
        net.devices[device_id] = user_id
        net.inboxes[device_id] = []

    async def query(self, user_ids: list[int]) -> list[DeviceKeys]:
        return [DeviceKeys(user_id=u, device_id=d, name="", identity=IdentityKeys(
            curve25519="c", ed25519="e", signature="s"))
            for d, u in self.net.devices.items() if u in user_ids]

    async def send_to_devices(self, targets: list[DeviceKeys], body: bytes) -> int:
        for t in targets:
            inbox = self.net.inboxes[t.device_id]
            inbox.append(DeviceMessage(self.user_id, self.device_id, len(inbox) + 1, body))
        return len(targets)

    async def receive(self) -> list[DeviceMessage]:
        got, self.net.inboxes[self.device_id] = self.net.inboxes[self.device_id], []
        return got


class FakeChats:
    def __init__(self, net: Net) -> None:
        self.net = net

    async def members(self, chat_id: int, offset: int, limit: int) -> list[Member]:
        users = sorted(self.net.members)[offset:offset + limit]
        return [Member(user=User(id=u, name=""), role="member") for u in users]


class FakeMessages:
    def __init__(self, net: Net, user_id: int) -> None:
        self.net, self.user_id = net, user_id

    async def send(self, chat_id: int, text: str, *, reply_to: int | None = None,
                   random_id: int | None = None, ciphertext: bytes | None = None
                   ) -> SentMessage:
        assert text == "" and ciphertext
        message = Message(chat_id=chat_id, id=len(self.net.messages) + 1,
                          sender_id=self.user_id, date=0.0, ciphertext=ciphertext)
        self.net.messages.append(message)
        return SentMessage(message=message, pts=0)


class FakeInbox:
    """client.inbox's contract as this module uses it: handlers by payload type, the
    before_ack hooks once a batch, then what the handlers asked to run later."""

    def __init__(self) -> None:
        self.handlers: dict[type, Any] = {}
        self.hooks: list[Any] = []

    def on(self, kind: type, handler: Any) -> None:
        self.handlers[kind] = handler

    def before_ack(self, hook: Any) -> None:
        self.hooks.append(hook)


async def receive_keys(groups: SecretGroups) -> None:
    """Read the device's inbox as client.inbox does (the handlers ``attach`` registers)."""
    inbox = FakeInbox()
    groups.attach(inbox)
    later: list[Any] = []
    for message in await groups._client.devices.receive():
        payload = read_payload(message.body or b"")
        handler = inbox.handlers.get(type(payload))
        if handler is not None:
            await handler(Incoming(message.sender_id, message.sender_device, message.seq,
                                   payload, later))
    for hook in inbox.hooks:
        await hook()
    for action in later:
        await action()


def device(net: Net, user_id: int, device_id: int, **kwargs: Any) -> SecretGroups:
    client = SimpleNamespace(profile=SimpleNamespace(user_id=user_id),
                             devices=FakeDevices(net, user_id, device_id),
                             chats=FakeChats(net), messages=FakeMessages(net, user_id),
                             emit=lambda event: None)
    net.members.add(user_id)
    return SecretGroups(client, **kwargs)  # type: ignore[arg-type]


def payloads(net: Net, device_id: int) -> list[Any]:
    return [read_payload(m.body or b"") for m in net.inboxes[device_id]]


async def test_a_message_before_its_key_waits_and_is_decrypted_when_the_key_comes() -> None:
    net = Net()
    alice, bob = device(net, 1, 11), device(net, 2, 21)
    await alice.send(CHAT, "hello")
    assert [type(p) for p in payloads(net, 21)] == [RoomKey]
    # The key is still in Bob's inbox: the message waits, kept, and its key is asked for.
    [waiting] = await bob.decrypt(net.messages)
    assert (waiting.state, waiting.text) == ("pending", None)
    assert len(bob.pending()) == 1
    asked = [p for p in payloads(net, 11) if isinstance(p, RoomKeyRequest)]
    assert len(asked) == 1 and asked[0].sender_device == 11
    await bob.decrypt(net.messages)
    assert len([p for p in payloads(net, 11) if isinstance(p, RoomKeyRequest)]) == 1  # once
    await receive_keys(bob)
    [resolved] = bob.take_resolved()
    assert (resolved.state, resolved.text, resolved.id) == ("decrypted", "hello", 1)
    assert bob.pending() == [] and bob.take_resolved() == []
    # Alice's own device reads her message too, from the session's own copy.
    assert [m.text for m in await alice.decrypt(net.messages)] == ["hello"]


async def test_rotation_by_count_and_time_with_an_injected_clock() -> None:
    net = Net()
    now = [1000.0]
    alice = device(net, 1, 11, policy=RotationPolicy(max_messages=2, max_age=60.0),
                   clock=lambda: now[0])
    device(net, 2, 21)
    for _ in range(3):
        await alice.send(CHAT, "m")
    assert alice.rotations == 2  # the first send, then after 2 messages
    now[0] += 60.0
    await alice.send(CHAT, "m")
    assert alice.rotations == 3
    device(net, 2, 22)  # Bob adds a device: it must not read what came before
    await alice.send(CHAT, "m")
    assert alice.rotations == 4
    assert sum(isinstance(p, RoomKey) for p in payloads(net, 22)) == 1
    del net.devices[22]  # ... and logs it out again
    await alice.send(CHAT, "m")
    assert alice.rotations == 5
    assert sum(isinstance(p, RoomKey) for p in payloads(net, 22)) == 1  # not told again


async def test_a_removed_member_cannot_read_after_and_is_not_given_the_key() -> None:
    net = Net()
    alice, bob, carol = device(net, 1, 11), device(net, 2, 21), device(net, 3, 31)
    await alice.send(CHAT, "before")
    net.members.discard(3)  # Carol is removed
    await alice.send(CHAT, "after")
    assert alice.rotations == 2
    await receive_keys(carol)
    before, after = await carol.decrypt(net.messages)
    assert (before.state, before.text) == ("decrypted", "before")
    assert after.state == "pending"
    await receive_keys(alice)  # Carol's request: she was not a member of the new session
    await receive_keys(carol)
    assert carol.take_resolved() == []
    assert [m.state for m in await carol.decrypt(net.messages)] == ["decrypted", "pending"]
    await receive_keys(bob)
    assert [m.text for m in await bob.decrypt(net.messages)] == ["before", "after"]


async def test_a_lost_key_is_re_shared_to_an_entitled_device() -> None:
    net = Net()
    alice, bob = device(net, 1, 11), device(net, 2, 21)
    await alice.send(CHAT, "one")
    await alice.send(CHAT, "two")
    net.inboxes[21].clear()  # the key's envelope was lost
    assert [m.state for m in await bob.decrypt(net.messages)] == ["pending", "pending"]
    await receive_keys(alice)
    [shared] = payloads(net, 21)
    assert isinstance(shared, RoomKey) and shared.exported
    await receive_keys(bob)
    assert [m.text for m in bob.take_resolved()] == ["one", "two"]


async def test_forwarded_keys_are_taken_from_own_devices_only() -> None:
    net = Net()
    alice, bob = device(net, 1, 11), device(net, 2, 21)
    await alice.send(CHAT, "one")
    key = payloads(net, 21)[0]
    forged = RoomKey(chat_id=CHAT, session_id=key.session_id, session_key=key.session_key,
                     exported=False, sender_device=11, sender_user=1)
    await bob.on_room_key(Incoming(3, 31, 1, forged))  # a third party claiming Alice's session
    assert [m.state for m in await bob.decrypt(net.messages)] == ["pending"]


async def test_a_renewed_olm_session_brings_the_current_group_keys_again() -> None:
    net = Net()
    alice, bob = device(net, 1, 11), device(net, 2, 21)
    device(net, 3, 31)
    await alice.send(CHAT, "one")
    net.inboxes[21].clear()  # Bob's device lost what came over its broken Olm session
    actions: list[Any] = []
    await alice.on_renew(Incoming(2, 21, 1, Renew(reason="cannot decrypt"), actions))
    await alice.on_renew(Incoming(4, 41, 1, Renew(), actions))  # not a member: nothing
    assert len(actions) == 1 and payloads(net, 21) == []  # sent after the batch's ack
    await actions[0]()
    [again] = payloads(net, 21)
    assert isinstance(again, RoomKey) and again.exported
    await receive_keys(bob)
    assert [m.text for m in await bob.decrypt(net.messages)] == ["one"]


async def test_text_is_checked_before_it_is_encrypted() -> None:
    net = Net()
    alice = device(net, 1, 11)
    for bad in ("", "   ", "nul\x00", "x" * 4097):
        with pytest.raises(InvalidArgument):
            await alice.send(CHAT, bad)
    assert net.messages == [] and alice.rotations == 0


async def test_attach_registers_with_the_inbox_router() -> None:
    net = Net()
    alice = device(net, 1, 11)
    registered: list[Any] = []
    router = SimpleNamespace(on=lambda kind, handler: registered.append(kind),
                             before_ack=lambda hook: registered.append(hook))
    alice.attach(router)  # type: ignore[arg-type]
    assert registered == [RoomKey, RoomKeyRequest, Renew, alice.save]
