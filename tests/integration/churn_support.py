"""Tools of the device-churn suite (issue 9, "No message a device should read stays
unreadable"), in the spirit of Matrix's Complement-Crypto: secret conversations through the
real server while devices come and go, and a count of what a device entitled to read a
message could not.

- :class:`Ledger` notes, for every message sent, which devices are entitled to read it (the
  devices of both people logged in with keys when it was sent, but the sender's), and
  counts per device those missing from its history once it read its inbox. What a device
  reported as undecryptable (with the reason) or as lost is collected beside.
- :class:`FaultyRelay` sits between the SDK and the server process and, on the way down,
  drops, duplicates or holds back (to reorder) the pushes of device inboxes, and on the
  way up can send an ``envelopes.send`` twice or cut the connection after the server
  answered one (the SDK then sends it again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from plaintext_scan import WebSocketRelay

from pigeon.client import Client
from pigeon.client.inbox import InboxGap
from pigeon.client.secret import SecretMessage, Undecryptable

DEADLINE = 20.0  # seconds a condition may take before the test fails


async def until(condition: Callable[[], Awaitable[bool]], what: str,
                deadline: float = DEADLINE) -> None:
    """Wait for ``condition`` (asked again at every turn of the loop, with a short pause),
    failing with ``what`` once ``deadline`` seconds passed. A wait on a state, never on
    time: it returns as soon as the state is there."""
    end = time.monotonic() + deadline
    while not await condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass(eq=False)
class Device:
    """One logged-in device of a person, under a name the test reads."""

    name: str
    client: Client
    events: list[Any] = field(default_factory=list)  # SecretMessage, Undecryptable, InboxGap

    @property
    def user_id(self) -> int:
        assert self.client.profile.user_id is not None
        return self.client.profile.user_id

    def collect(self) -> list[Any]:
        """The secret events that came since the last call (kept in ``events`` too)."""
        new = [u for u in self.client.take_updates()
               if isinstance(u, SecretMessage | Undecryptable | InboxGap)]
        self.events += new
        return new

    @property
    def undecryptable(self) -> list[Undecryptable]:
        return [e for e in self.events if isinstance(e, Undecryptable)]

    @property
    def gaps(self) -> list[InboxGap]:
        return [e for e in self.events if isinstance(e, InboxGap)]

    async def held(self) -> set[str]:
        """The ids of the secret messages in this device's history, every chat."""
        secret = self.client.secret
        return {m.message_id for chat in secret.chats()
                for m in await secret.history(chat.chat_id)}


class Ledger:
    """Who is entitled to read what, and what each one could not."""

    def __init__(self) -> None:
        self.entitled: dict[str, set[str]] = {}  # device name -> message ids
        self.texts: dict[str, str] = {}  # message id -> text (for the failure's message)
        self.sent = 0

    async def send(self, sender: Device, peer: Device | int, text: str,
                   readers: list[Device]) -> SecretMessage:
        """``sender`` writes ``text`` to ``peer`` (a device of the person, or a user id);
        ``readers`` are the devices that must be able to read it."""
        user = peer if isinstance(peer, int) else peer.user_id
        sent = await sender.client.secret.send(None, text, user_id=user)
        self.note(sent, readers)
        return sent

    def note(self, sent: SecretMessage, readers: list[Device]) -> None:
        self.sent += 1
        self.texts[sent.message_id] = sent.text
        for reader in readers:
            self.entitled.setdefault(reader.name, set()).add(sent.message_id)

    async def unreadable(self, devices: list[Device]) -> dict[str, list[str]]:
        """Per device, the texts it is entitled to but does not hold, after reading its
        inbox (twice: a first read may ask a sender for a new session, whose answer a
        second read takes)."""
        out: dict[str, list[str]] = {}
        for device in devices:
            await device.client.secret.receive()
            device.collect()
            held = await device.held()
            missing = sorted(self.entitled.get(device.name, set()) - held)
            if missing:
                out[device.name] = [self.texts[m] for m in missing]
        return out

    async def count_unreadable(self, devices: list[Device]) -> int:
        return sum(len(v) for v in (await self.unreadable(devices)).values())


# -- the fault-injecting relay ------------------------------------------------------------------
Decision = str  # "pass", "drop", "dup", "hold", "cut"
Rule = Callable[[str, dict[str, Any]], Decision]
_decode = msgspec.msgpack.Decoder()
#: request ids of the copies the relay makes of a call (their answers go no further)
COPY = 2**52


def inbox_pushes(frame: dict[str, Any]) -> bool:
    """A push of one or more device-inbox items (an end-to-end envelope on its way)."""
    return frame.get("t") == "items" and any(
        str(i.get("stream", "")).startswith("device:") for i in frame.get("items", []))


def envelope_sends(frame: dict[str, Any]) -> bool:
    return frame.get("t") == "call" and frame.get("method") == "envelopes.send"


@dataclass
class FaultyRelay(WebSocketRelay):
    """A WebSocket relay on loopback in front of ``upstream`` (the server's URL). Each
    frame goes through ``rule(direction, frame)`` ("down": server to SDK, "up": SDK to
    server), which says what to do with it:

    - ``pass``; ``drop`` (never delivered); ``dup`` (delivered twice; a call is made
      twice, its copy's answer kept from the SDK);
    - ``hold`` (kept back, delivered after the next frame that passes: a reordering);
    - ``cut`` (up only: delivered, and once the server answered it, the answer is dropped
      and the connection closed, as a network that fails at the worst moment).
    """

    rule: Rule = lambda direction, frame: "pass"
    done: dict[str, int] = field(default_factory=dict)  # decision -> how many times

    def _decide(self, direction: str, data: bytes) -> Decision:
        try:
            frame = _decode.decode(data)
        except msgspec.DecodeError:
            return "pass"
        decision = self.rule(direction, frame) if isinstance(frame, dict) else "pass"
        if decision != "pass":
            self.done[decision] = self.done.get(decision, 0) + 1
        return decision

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=0)
        await client.prepare(request)
        cut: set[int] = set()  # request ids whose answer ends the connection
        async with self._session.ws_connect(f"{self.upstream}/v1/ws", max_msg_size=0) as server:
            async def pump(source: Any, sink: Any, direction: str) -> None:
                held: list[bytes] = []
                async for msg in source:
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    data = msg.data
                    decision = self._decide(direction, data)
                    if direction == "down":
                        answer = _decode.decode(data)
                        if isinstance(answer, dict) and answer.get("id") in cut:
                            break  # the answer never arrives: the connection is gone
                        if isinstance(answer, dict) and (answer.get("id") or 0) >= COPY:
                            continue  # the answer to the relay's copy of a call
                    if decision == "drop":
                        continue
                    if decision == "hold":
                        held.append(data)
                        continue
                    if decision == "cut":
                        cut.add(int(_decode.decode(data)["id"]))
                    await sink.send_bytes(data)
                    if decision == "dup" and direction == "up":
                        frame = _decode.decode(data)
                        await sink.send_bytes(msgspec.msgpack.encode(
                            {**frame, "id": COPY + int(frame["id"])}))
                    elif decision == "dup":
                        await sink.send_bytes(data)
                    for late in held:
                        await sink.send_bytes(late)
                    held.clear()
                await sink.close()

            up = asyncio.create_task(pump(client, server, "up"))
            down = asyncio.create_task(pump(server, client, "down"))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
            await client.close()
        return client


