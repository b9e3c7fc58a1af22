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

    def revoke(self, reason: str) -> None: ...


class LocalBus:
    def __init__(self) -> None:
        self._by_user: dict[int, set[Sink]] = {}

    def attach(self, sink: Sink) -> None:
        self._by_user.setdefault(sink.user_id, set()).add(sink)

    def detach(self, sink: Sink) -> None:
        sinks = self._by_user.get(sink.user_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._by_user[sink.user_id]

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
