"""The SDK's ordered updates and gap recovery, a part of :class:`~.client.Client`: each
stream the device follows has one position (the last seq it applied); an update is delivered
when it is the next one, waits in ``_early`` when it comes ahead of a hole, and a hole that
does not fill within ``GAP_WAIT`` is fetched (``updates.get_stream_difference``, or
``updates.get_difference`` from a version-1 server)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from pigeon.protocol import methods as m
from pigeon.protocol.errors import NotFound
from pigeon.protocol.streams import StreamItem, read_item, user_stream
from pigeon.protocol.types import State
from pigeon.protocol.updates import Envelope, KeysLow, StickersInstalled, UnknownUpdate

if TYPE_CHECKING:
    from .devices import Devices
    from .inbox import Inbox
    from .profile import Profile
    from .stickers import Stickers

log = logging.getLogger("pigeon.client")

GAP_WAIT = 0.5  # seconds an out-of-order update waits for the ones before it


class OrderedStreams:
    """The positions and the reordering; the Client provides what is declared here."""

    profile: Profile
    inbox: Inbox
    devices: Devices
    stickers: Stickers
    track_updates: bool
    skipped_updates: int
    version: int
    _own: tuple[int | None, str]
    _heads: dict[str, int]
    _early: dict[str, dict[int, StreamItem]]
    _gap_task: asyncio.Task[None] | None
    _sync_lock: asyncio.Lock
    _queue: asyncio.Queue[Any]

    async def call(self, method: str, params: m.Params, *,
                   overload_retries: int | None = None) -> Any:
        raise NotImplementedError  # the Client's

    # Each stream the device follows has one position: the last seq it applied. The user's
    # own stream keeps it in profile.pts (as before streams), the others in profile.streams.
    def _own_stream(self) -> str:
        # Asked several times per update: the name is built again only when the user changes.
        user_id, name = self._own
        if user_id != self.profile.user_id or not name:
            self._own = (self.profile.user_id, user_stream(self.profile.user_id or 0))
            name = self._own[1]
        return name

    def _position(self, stream: str) -> int:
        if stream == self._own_stream():
            return self.profile.pts
        return self.profile.streams.get(stream, 0)

    def _set_position(self, stream: str, seq: int) -> None:
        if stream == self._own_stream():
            self.profile.pts = seq
        else:
            self.profile.streams[stream] = seq

    def _start_from(self, state: State) -> None:
        """A new session starts at the heads the server gave: nothing before is replayed."""
        self.profile.pts = state.pts
        self.profile.streams = dict(state.streams)
        self._heads = dict(state.streams)
        self._early.clear()

    def _behind(self, state: State) -> bool:
        self._heads.update(state.streams)
        return state.pts > self.profile.pts or any(
            head > self._position(stream) for stream, head in state.streams.items())

    def _on_updates(self, updates: list[Any]) -> None:
        if self.track_updates:
            self._accept(updates)

    def _on_items(self, items: list[StreamItem]) -> None:
        if self.track_updates:
            self._accept_items(items)

    def _accept(self, updates: list[Any]) -> None:
        """Updates of the user's own stream, each at position ``pts`` (version 1's shape)."""
        own = self._own_stream()
        self._accept_items([StreamItem(own, update.pts, update) for update in updates])

    def _accept_items(self, items: list[StreamItem]) -> None:
        early = self._early
        inbox = self.inbox
        for item in items:
            seq = item.seq
            if inbox.following and seq and isinstance(item.body, Envelope):
                inbox.pushed(item)  # this device's inbox: read, kept, then acknowledged
                continue
            if seq == 0:
                self._deliver(item)  # ephemeral: no position
                continue
            position = self._position(item.stream)
            if seq == position + 1 and item.stream not in early:
                # The next one, and none of its stream waits: the usual case, delivered
                # without the detour through _early (a dict per stream, a drain per batch).
                self._set_position(item.stream, seq)
                self._deliver(item)
            elif seq > position:
                early.setdefault(item.stream, {})[seq] = item
        if not early:
            return
        self._drain_in_order()
        if self._early and (self._gap_task is None or self._gap_task.done()):
            self._gap_task = asyncio.create_task(self._fill_gap_later())

    def _drain_in_order(self) -> None:
        for stream, early in list(self._early.items()):
            position = self._position(stream)
            while (item := early.pop(position + 1, None)) is not None:
                position = item.seq
                self._set_position(stream, position)
                self._deliver(item)
            for stale in [seq for seq in early if seq <= position]:
                del early[stale]
            if not early:
                del self._early[stream]

    def _deliver(self, item: StreamItem) -> None:
        body = item.body
        if isinstance(body, UnknownUpdate):
            # Its position is already counted; only the application does not see it.
            self.skipped_updates += 1
            if body.error:
                log.warning("skipped an update the server sent broken: %s", body.error)
            else:
                log.debug("skipped an update of a type this SDK does not know: %r", body.type)
            return
        if isinstance(body, KeysLow):
            self.devices.top_up_soon()
        elif isinstance(body, StickersInstalled):
            self.stickers.seen(body)
        if isinstance(body, Envelope) and self.inbox.following:
            self.inbox.pushed(item)
            return
        if item.seq and body.pts != item.seq and item.stream == self._own_stream():
            body = msgspec.structs.replace(body, pts=item.seq)  # pts is the position there
        self._queue.put_nowait(body)

    async def _fill_gap_later(self) -> None:
        await asyncio.sleep(GAP_WAIT)
        if self._early:
            await self.sync()

    def _spawn_sync(self) -> None:
        task = asyncio.create_task(self.sync())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def sync(self) -> int:
        """Fetch everything after the local position of each stream followed (until caught
        up); returns how many updates were fetched."""
        async with self._sync_lock:
            if self.version < 2:
                return await self._sync_pts()
            own = self._own_stream()
            streams = dict.fromkeys([own, *self._heads, *self._early])
            return sum([await self._sync_stream(stream) for stream in streams])

    async def _sync_stream(self, stream: str) -> int:
        fetched = 0
        while True:
            try:
                page = await self.call("updates.get_stream_difference", m.GetStreamDifference(
                    stream=stream, seq=self._position(stream)))
            except NotFound:
                if stream == self._own_stream():
                    raise
                self._forget(stream)  # no longer ours to read: we left that chat
                return fetched
            self._take_page(stream, [read_item(item) for item in page.items], page.seq)
            fetched += len(page.items)
            if not page.more:
                self._heads.pop(stream, None)
                return fetched

    async def _sync_pts(self) -> int:
        """Version 1: the user's own stream, by pts."""
        fetched = 0
        own = self._own_stream()
        while True:
            diff = await self.call("updates.get_difference",
                                   m.GetDifference(pts=self.profile.pts))
            self._take_page(own, [StreamItem(own, u.pts, u) for u in diff.updates],
                            diff.state.pts)
            fetched += len(diff.updates)
            if not diff.more:
                return fetched

    def _forget(self, stream: str) -> None:
        self.profile.streams.pop(stream, None)
        self._heads.pop(stream, None)
        self._early.pop(stream, None)

    def _take_page(self, stream: str, items: list[StreamItem], reached: int) -> None:
        if items and items[0].seq > self._position(stream) + 1:
            # A difference is gap-free after the position asked for: what lies before its
            # first item is not for this reader (a chat's stream is read from one's joining).
            self._set_position(stream, items[0].seq - 1)
        early = self._early.setdefault(stream, {})
        for item in items:
            if item.seq > self._position(stream):
                early[item.seq] = item
        self._drain_in_order()
        if reached > self._position(stream) and not items:
            self._set_position(stream, reached)  # nothing left to see below this
