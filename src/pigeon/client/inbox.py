"""``client.inbox``: the one reader of this device's inbox (``device:<id>``), routing each
decrypted payload to the subsystem that registered for its type.

Registration (secret chats, end-to-end groups and verification each plug in this way)::

    async def on_room_key(message: Incoming) -> None:    # message.payload is a RoomKey
        ...                                               # keep it (see "Durability")
    client.inbox.on(RoomKey, on_room_key)
    client.inbox.on_undecryptable(handler)   # async (DeviceMessage) -> None: why it failed
    client.inbox.before_ack(hook)            # async () -> None: once per batch, before ack

Durability: for each batch of envelopes the inbox decrypts, runs every handler, then every
``before_ack`` hook (where a subsystem writes what its handlers took to disk, once per
batch: no per-message fsync), then saves the advanced Olm sessions, and only then
acknowledges the batch to the server, which deletes it. A crash anywhere before the ack
reads the batch again; handlers must therefore be idempotent (secret chats dedupe by
message id). While handlers run, the device's Olm state is locked: a handler must not send;
it asks for sends with ``message.later(action)``, run once the batch is acknowledged.

A copy of an envelope already read (the same ciphertext again: a send that was retried, a
server replaying) is refused and counted (``duplicates``), not reported: its message was
read. What cannot be decrypted is never dropped silently: each such envelope goes to the
``on_undecryptable`` handlers, and the device heals by itself: it starts a fresh Olm
session with the sender's device and sends it a :class:`~pigeon.crypto.payloads.Renew`
(at most once per device per ``RENEW_EVERY`` seconds), after which the sender's messages
use that session; the Renew says from when this device misses that device's messages
(``renewal_since``), and the sender sends again those it still holds.

Nor is what the server deleted unread: envelopes left past its retention
(``device_inbox_retention``) are purged, and the positions they held are missing between
what this device kept last (:attr:`Devices.inbox_seq`) and what it reads now; each such
hole comes to :meth:`Client.updates` as an :class:`InboxGap` saying how many were lost.

The inbox reads on demand (:meth:`Inbox.receive`) and, once :meth:`Inbox.follow` was
called, by itself: envelopes the server pushes are processed as they come (when in order
after the last batch, straight from the push; otherwise by asking for the difference), and
after every reconnect whatever waited is fetched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from pigeon.crypto.payloads import Payload, Renew, UnknownPayload, encode_payload, read_payload
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.streams import StreamItem, read_item
from pigeon.protocol.updates import Envelope as Delivered

from .devices import DeviceMessage

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("pigeon.client.inbox")

P = TypeVar("P", bound=Payload)
Action = Callable[[], Awaitable[Any]]
FailureHandler = Callable[[DeviceMessage], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
#: seconds between two renewals asked of one device (a peer sending garbage must not make
#: this device claim its keys in a loop)
RENEW_EVERY = 60.0
#: seconds before a follower tries its inbox again after a failure (a full disk, say)
RETRY_AFTER = 5.0


class InboxGap(msgspec.Struct, frozen=True, kw_only=True):
    """Envelopes for this device that the server deleted before it read them (it was away
    longer than the server keeps them): ``count`` of them, from positions ``first`` to
    ``last`` of its inbox. What they held cannot be known, nor read."""

    count: int
    first: int
    last: int
    reason: str = ("gone from the server before this device kept them (past its retention, "
                   "or read before this device's keys were restored from a copy)")


@dataclass
class Incoming:
    """One payload another device sent this one, as a handler gets it."""

    sender_id: int
    sender_device: int
    seq: int
    payload: Any
    _later: list[Action] = field(default_factory=list, repr=False)

    def later(self, action: Action) -> None:
        """Run ``action`` (a send, say) after the batch is acknowledged."""
        self._later.append(action)


class Inbox:
    def __init__(self, client: Client, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._handlers: dict[type, list[Callable[[Incoming], Awaitable[None]]]] = {}
        self._failure_handlers: list[FailureHandler] = []
        self._hooks: list[Hook] = []
        self._lock = asyncio.Lock()  # one batch at a time, in order
        self._done = 0  # the last position processed (and being acknowledged) in this run
        self._acked_seq = 0  # ... and the last the server confirmed it deleted
        self._acking: asyncio.Task[None] | None = None
        self._pushed: dict[int, Delivered] = {}
        self._fetch = False  # a difference is wanted (reconnected, or a push out of order)
        self._task: asyncio.Task[None] | None = None
        self._renewed: dict[int, float] = {}  # device -> when a renewal was last asked
        self.following = False
        #: ``since(device_id)``: from when (ms, that device's clock) this device misses
        #: what ``device_id`` sent, said in the Renew so that it sends those again (secret
        #: chats install it; None: not said)
        self.renewal_since: Callable[[int], int] | None = None
        self.undecryptable = 0  # envelopes that could not be read, since start
        self.unhandled = 0  # payloads no handler took (unknown variants included)
        self.duplicates = 0  # copies of envelopes already read (refused, not undecryptable)
        self.lost = 0  # envelopes the server deleted before this device read them

    # -- registration -----------------------------------------------------------------------
    def on(self, kind: type[P], handler: Callable[[Incoming], Awaitable[None]]) -> None:
        """``handler`` gets every payload of type ``kind`` (several handlers: in order)."""
        self._handlers.setdefault(kind, []).append(handler)

    def on_undecryptable(self, handler: FailureHandler) -> None:
        self._failure_handlers.append(handler)

    def before_ack(self, hook: Hook) -> None:
        self._hooks.append(hook)

    @property
    def stream(self) -> str:
        return device_stream(self._client.devices.device_id)

    # -- reading ----------------------------------------------------------------------------
    async def receive(self) -> int:
        """Process everything waiting in this device's inbox; returns how many envelopes."""
        async with self._lock, self._client.e2e_guard():
            return await self._drain()

    def follow(self) -> None:
        """From now on, process pushed envelopes as they come (and catch up now)."""
        self.following = True
        self._fetch = True
        self._kick()

    def pushed(self, item: StreamItem) -> None:
        """An item the server pushed on this device's inbox stream (client.py routes it)."""
        if isinstance(item.body, Delivered) and item.seq > self._done:
            self._pushed[item.seq] = item.body
            self._kick()

    def connected(self) -> None:
        """A (re)connect: what arrived meanwhile was not pushed; fetch it."""
        if self.following:
            self._fetch = True
            self._kick()

    def signed_in(self) -> None:
        """This client became another device (a new login): its inbox is another stream,
        read from its start; nothing of the old one's positions applies."""
        self._done = self._acked_seq = 0
        self._pushed.clear()
        self._renewed.clear()
        if self.following:
            self._fetch = True
            self._kick()

    async def idle(self) -> None:
        """Wait until the pushed envelopes known so far are processed (tests, benches)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def close(self) -> None:
        """Stop reading (the client is closing); what was not acknowledged is read again
        next time."""
        self.following = False
        for task in (self._task, self._acking):
            if task is not None:
                task.cancel()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._fetch or self._pushed:
            try:
                async with self._lock, self._client.e2e_guard():
                    batch = self._in_order()
                    if batch is None:
                        self._fetch = False
                        self._pushed.clear()
                        await self._drain()
                    elif batch:
                        await self._process(batch, batch[-1][0])
            except Exception as exc:  # tried again later (or at the next push, reconnect)
                log.warning("reading this device's inbox failed: %s", exc)
                self._fetch = False
                if self.following:
                    asyncio.get_running_loop().call_later(RETRY_AFTER, self._retry)
                return

    def _retry(self) -> None:
        if self.following:
            self._fetch = True
            self._kick()

    def _in_order(self) -> list[tuple[int, Delivered]] | None:
        """The pushed envelopes that follow the last batch without a hole, or None if a
        difference must be fetched instead."""
        for seq in [s for s in self._pushed if s <= self._done]:
            del self._pushed[seq]
        if self._fetch or not self._done:
            return None
        batch = []
        seq = self._done + 1
        while (body := self._pushed.pop(seq, None)) is not None:
            batch.append((seq, body))
            seq += 1
        if not batch and self._pushed:
            return None  # a hole: the push before these was lost (or is still on its way)
        return batch

    async def _drain(self) -> int:
        stream, total = self.stream, 0
        while True:
            page = await self._client.call("updates.get_stream_difference",
                                           m.GetStreamDifference(stream=stream, seq=self._done))
            items = [read_item(item) for item in page.items]
            batch = [(i.seq, i.body) for i in items if isinstance(i.body, Delivered)]
            total += len(batch)
            # Items of types this SDK does not know are acknowledged with the rest.
            await self._process(batch, max(page.seq, self._done), [i.seq for i in items])
            if not page.more:
                return total

    async def _process(self, batch: list[tuple[int, Delivered]], reached: int,
                       present: list[int] | None = None) -> None:
        """``present``: the positions of every item read (all of ``batch``'s if None)."""
        later: list[Action] = []
        self._report_gap(reached, [s for s, _ in batch] if present is None else present)
        if batch or reached > self._client.devices.inbox_seq:
            async with self._client.devices.decrypting(batch, reached) as opened:
                for message in opened:
                    await self._dispatch(message, later)
                for hook in self._hooks:
                    await hook()
        if reached > self._done:
            self._done = reached
            if self._acking is None or self._acking.done():
                self._acking = asyncio.create_task(self._ack())
            await self._acked()
        for action in later:
            try:
                await action()
            except Exception as exc:  # a reply that failed must not stop the inbox
                log.warning("a follow-up of an inbox message failed: %s", exc)

    def _report_gap(self, reached: int, present: list[int]) -> None:
        """Positions after the last one kept, up to ``reached``, that hold no item: the
        server purged them unread (only this device acknowledges, and only what it kept)."""
        kept = self._client.devices.inbox_seq
        if reached <= kept:
            return
        seen = {s for s in present if kept < s <= reached}
        lost = reached - kept - len(seen)
        if lost <= 0:
            return
        first, last = kept + 1, reached  # the lowest and highest position missing
        while first in seen:
            first += 1
        while last in seen:
            last -= 1
        self.lost += lost
        log.warning("%d envelopes for this device were gone from the server before it kept "
                    "them (positions %d to %d)", lost, first, last)
        self._client.emit(InboxGap(count=lost, first=first, last=last))

    async def _ack(self) -> None:
        while self._acked_seq < self._done:
            seq = self._done
            await self._client.call("updates.ack_stream", m.AckStream(stream=self.stream,
                                                                      seq=seq))
            self._acked_seq = seq

    async def _acked(self) -> None:
        """While following, the next batch is read while the ack of this one travels (the
        position saved with the Olm sessions already keeps a batch from being read twice);
        a caller of :meth:`receive` gets its answer once the server deleted them."""
        task = self._acking
        if task is None:
            return
        if self.following and self._task is not None and \
                asyncio.current_task() is self._task:
            task.add_done_callback(_log_ack_failure)
            return
        await asyncio.shield(task)

    async def _dispatch(self, message: DeviceMessage, later: list[Action]) -> None:
        if message.duplicate:
            # Its message was read: a copy is refused, not an unreadable message (nor a
            # reason to make the sender start a new session).
            self.duplicates += 1
            log.info("envelope %d from device %d is a copy of one already read: skipped",
                     message.seq, message.sender_device)
            return
        if message.body is None:
            self.undecryptable += 1
            log.info("envelope %d from device %d cannot be decrypted: %s", message.seq,
                     message.sender_device, message.error)
            for failed in self._failure_handlers:
                await failed(message)
            self._ask_renewal(message, later)
            return
        payload = read_payload(message.body)
        incoming = Incoming(message.sender_id, message.sender_device, message.seq, payload,
                            later)
        handlers = self._handlers.get(type(payload), [])
        if isinstance(payload, UnknownPayload) or not handlers:
            self.unhandled += 1
            if isinstance(payload, UnknownPayload) and payload.error:
                log.warning("device %d sent a malformed payload: %s", message.sender_device,
                            payload.error)
        for handler in handlers:
            await handler(incoming)

    def _ask_renewal(self, message: DeviceMessage, later: list[Action]) -> None:
        target = self._client.devices.known(message.sender_device)
        if target is None:
            return  # a device we cannot find: nothing to renew with
        now = self._clock()
        last = self._renewed.get(target.device_id)
        if last is not None and now - last < RENEW_EVERY:
            return
        self._renewed[target.device_id] = now
        reason = (message.error or "")[:200]
        since = None if self.renewal_since is None else self.renewal_since(target.device_id)
        later.append(lambda: self._client.devices.renew(
            target, encode_payload(Renew(reason=reason, since=since))))


def _log_ack_failure(task: asyncio.Task[None]) -> None:
    # Not lost: the next read asks from the last position and skips what was kept.
    if not task.cancelled() and task.exception() is not None:
        log.info("acknowledging inbox envelopes failed: %s", task.exception())
