"""Streams (protocol version 2): reading them, acknowledging a device inbox, and who follows
which chat stream on this node.

* ``user:<id>``: the caller's own updates, their ``pts`` log seen as stream items;
* ``chat:<id>``: a very large chat's one sequence, read by each member from their joining on
  (:meth:`Store.chat_stream`); members online get its items pushed by the bus, to which
  each of their devices subscribes at hello and when they join;
* ``device:<id>``: the inbox of the device of session ``id``, read and acknowledged by that
  device alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pigeon.domain import streams
from pigeon.protocol import methods as m
from pigeon.protocol.holdback import hold_back
from pigeon.protocol.sizes import PAGE_BYTES
from pigeon.protocol.streams import StreamDifference, item, item_overhead, user_stream
from pigeon.protocol.types import Affected
from pigeon.protocol.updates import ChatUpdate
from pigeon.store import Push

from .services import Caller, Services

log = logging.getLogger("pigeon.streams")


async def get_stream_difference(caller: Caller, p: m.GetStreamDifference) -> StreamDifference:
    store, version = caller.services.store, caller.version
    # The store budgets a page on its item bodies; each item's envelope comes on top.
    budget = PAGE_BYTES - p.limit * item_overhead(p.stream)
    if p.stream == user_stream(caller.user_id):
        diff = await store.get_difference(caller.user_id, p.seq, p.limit, max_bytes=budget)
        return StreamDifference(
            stream=p.stream, items=[item(p.stream, u.pts, hold_back(u, version))
                                    for u in diff.updates],
            seq=diff.state.pts, more=diff.more)
    ref = streams.parse(p.stream)
    if ref.kind == streams.CHAT:
        page = await store.chat_stream(caller.user_id, ref.id, p.seq, p.limit, max_bytes=budget)
        return StreamDifference(stream=p.stream, items=[
            item(p.stream, seq, hold_back(body, version)) for seq, body in page.items],
            seq=page.seq, more=page.more)
    streams.device_reader(p.stream, caller.session_id)
    page = await store.stream_items(p.stream, p.seq, p.limit, max_bytes=budget)
    return StreamDifference(stream=p.stream, items=[
        item(p.stream, seq, body) for seq, body in page.items], seq=page.seq, more=page.more)


async def ack_stream(caller: Caller, p: m.AckStream) -> Affected:
    """Only the device whose inbox it is may acknowledge (and so delete) its items."""
    streams.device_reader(p.stream, caller.session_id)
    count = await caller.services.store.ack_stream(p.stream, p.seq)
    return Affected(count=count)


# -- who follows which chat stream on this node -------------------------------------------------
def follow_changes(services: Services, pushes: Sequence[Push]) -> None:
    """Whoever a write made a member of a large chat follows its stream from now on; whoever
    it removed does not. The store tells each of them on their own stream (a ``chat`` update
    with or without a role), which is what this reads, before the chat's own items go out."""
    bus = services.bus
    for push in pushes:
        update = push.update
        if push.stream or not isinstance(update, ChatUpdate):
            continue
        if not streams.on_chat_stream(update.chat.kind) or update.chat.invited_by is not None:
            continue
        stream = streams.chat_stream(update.chat.id)
        change = bus.subscribe_user if update.chat.role is not None else bus.unsubscribe_user
        for user_id in {user_id for user_id, _ in push.targets}:
            change(user_id, stream)


def publish(services: Services, pushes: Sequence[Push]) -> int:
    """The pushes of chat streams, to every device that follows each (the sender's too: its
    answer names no position of that stream)."""
    return sum(services.bus.publish(push.stream, push.update) for push in pushes if push.stream)


# -- retention of device inboxes ----------------------------------------------------------------
PURGE_STEP = 1_000  # items one purge transaction deletes at most: the writer is never held long


async def purge_device_inboxes(services: Services, every: float) -> None:
    """Delete device inbox items left unacknowledged past ``device_inbox_retention``, once
    every ``every`` seconds, in small steps that queue behind the writes of users."""
    while True:
        await asyncio.sleep(every)
        before = services.clock() - services.settings.device_inbox_retention
        try:
            while await services.store.purge_device_inboxes(before, PURGE_STEP) == PURGE_STEP:
                await asyncio.sleep(0)
        except Exception:  # a failed purge is retried at the next round
            log.exception("purging device inboxes failed")


HANDLERS = {
    "updates.get_stream_difference": get_stream_difference,
    "updates.ack_stream": ack_stream,
}
