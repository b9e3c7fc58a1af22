"""The in-process bus: every device connected to this process, by user and by stream."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from pigeon.store.base import Push

from .base import Sink


class LocalBus:
    """:class:`~.base.Bus` for one process. Sinks are held in insertion-ordered dicts
    (used as sets) so that delivery order is the order devices attached or subscribed:
    deterministic, which tests and reproductions rely on."""

    def __init__(self) -> None:
        self._by_user: dict[int, dict[Sink, None]] = {}
        self._by_stream: dict[str, dict[Sink, None]] = {}
        self._streams_of: dict[Sink, set[str]] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"kind": "local", "connected": True}

    def on_revocations(self, revoked: Callable[[list[int]], None],
                       unsure: Callable[[], None]) -> None:
        pass  # one process: its own revocations are all there are, and none is ever missed

    @property
    def revocations_current(self) -> bool:
        return True

    def attach(self, sink: Sink) -> None:
        assert sink.user_id is not None, "only a logged-in device is attached"
        self._by_user.setdefault(sink.user_id, {})[sink] = None

    def detach(self, sink: Sink) -> None:
        for stream in list(self._streams_of.get(sink, ())):
            self.unsubscribe(sink, stream)
        if sink.user_id is None:
            return
        sinks = self._by_user.get(sink.user_id)
        if sinks is not None:
            sinks.pop(sink, None)
            if not sinks:
                del self._by_user[sink.user_id]

    def subscribe(self, sink: Sink, stream: str) -> None:
        self._by_stream.setdefault(stream, {})[sink] = None
        self._streams_of.setdefault(sink, set()).add(stream)

    def unsubscribe(self, sink: Sink, stream: str) -> None:
        sinks = self._by_stream.get(stream)
        if sinks is not None:
            sinks.pop(sink, None)
            if not sinks:
                del self._by_stream[stream]
        streams = self._streams_of.get(sink)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams_of[sink]

    def subscribe_user(self, user_id: int, stream: str) -> None:
        for sink in list(self._by_user.get(user_id, ())):
            if sink.reads_streams:
                self.subscribe(sink, stream)

    def unsubscribe_user(self, user_id: int, stream: str) -> None:
        for sink in list(self._by_user.get(user_id, ())):
            self.unsubscribe(sink, stream)

    def publish(self, stream: str, item: Any, exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        delivered = 0
        for sink in self._by_stream.get(stream, ()):
            if sink.session_id != exclude_session and sink.sink_id != exclude_sink:
                sink.push_item(stream, item)
                delivered += 1
        return delivered

    def deliver(self, pushes: Iterable[Push], exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        """Synchronous on purpose: called right after the commit that numbered the updates,
        it keeps every device's stream in pts order."""
        delivered = 0
        by_user = self._by_user
        for update, targets in pushes:
            for user_id, pts in targets:
                sinks = by_user.get(user_id)
                if not sinks:
                    continue
                stamped = msgspec.structs.replace(update, pts=pts)
                for sink in sinks:
                    if sink.session_id != exclude_session and sink.sink_id != exclude_sink:
                        sink.push(stamped)
                        delivered += 1
        return delivered

    def deliver_ephemeral(self, user_ids: Iterable[int], update: Any) -> None:
        for user_id in user_ids:
            for sink in self._by_user.get(user_id, ()):
                sink.push(update)

    def push_to_session(self, user_id: int, session_id: int, update: Any) -> int:
        delivered = 0
        for sink in self._by_user.get(user_id, ()):
            if sink.session_id == session_id:
                sink.push(update)
                delivered += 1
        return delivered

    def revoke_sessions(self, user_id: int, session_ids: Iterable[int], reason: str) -> None:
        doomed = set(session_ids)
        # A copy: revoking detaches the sink from the dict being walked.
        for sink in list(self._by_user.get(user_id, ())):
            if sink.session_id in doomed:
                sink.revoke(reason)

    def streams_of(self, sink: Sink) -> frozenset[str]:
        return frozenset(self._streams_of.get(sink, ()))

    def is_attached(self, sink: Sink) -> bool:
        return sink.user_id is not None and sink in self._by_user.get(sink.user_id, {})

    def sinks_of(self, user_id: int) -> list[Sink]:
        return list(self._by_user.get(user_id, ()))

    def online_devices(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, ()))

    def connection_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())
