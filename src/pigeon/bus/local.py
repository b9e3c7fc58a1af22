"""The in-process bus: every connection of this node, indexed by user."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from pigeon.store.base import Push


class Sink(Protocol):
    """What the bus delivers to: one connected, logged-in device."""

    user_id: int
    session_id: int

    def push(self, update: Any) -> None: ...

    def push_item(self, stream: str, item: Any) -> None: ...

    def revoke(self, reason: str) -> None: ...


class LocalBus:
    def __init__(self) -> None:
        self._by_user: dict[int, set[Sink]] = {}
        self._by_stream: dict[str, dict[Sink, None]] = {}
        self._streams_of: dict[Sink, set[str]] = {}

    def attach(self, sink: Sink) -> None:
        self._by_user.setdefault(sink.user_id, set()).add(sink)

    def detach(self, sink: Sink) -> None:
        for stream in list(self._streams_of.get(sink, ())):
            self.unsubscribe(sink, stream)
        sinks = self._by_user.get(sink.user_id)
        if sinks is not None:
            sinks.discard(sink)
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

    def publish(self, stream: str, item: Any, exclude_session: int | None = None) -> int:
        """``item`` to every attached sink that follows ``stream``, except the one of
        session ``exclude_session``; returns how many were reached."""
        delivered = 0
        for sink in self._by_stream.get(stream, ()):
            if exclude_session is None or sink.session_id != exclude_session:
                sink.push_item(stream, item)
                delivered += 1
        return delivered

    def deliver(self, pushes: Iterable[Push], exclude: Sink | None = None) -> int:
        """Stamp each recipient's pts and hand the update to their online devices.

        Synchronous on purpose: called right after the commit that numbered the updates, it
        keeps every device's stream in pts order."""
        delivered = 0
        by_user = self._by_user
        for update, targets in pushes:
            for user_id, pts in targets:
                sinks = by_user.get(user_id)
                if not sinks:
                    continue
                stamped = msgspec.structs.replace(update, pts=pts)
                for sink in sinks:
                    if sink is not exclude:
                        sink.push(stamped)
                        delivered += 1
        return delivered

    def deliver_ephemeral(self, user_ids: Iterable[int], update: Any) -> None:
        for user_id in user_ids:
            for sink in self._by_user.get(user_id, ()):
                sink.push(update)

    def revoke_sessions(self, user_id: int, session_ids: Iterable[int], reason: str) -> None:
        doomed = set(session_ids)
        for sink in list(self._by_user.get(user_id, ())):
            if sink.session_id in doomed:
                sink.revoke(reason)

    def online_devices(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, ()))

    def connection_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())
