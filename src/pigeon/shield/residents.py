"""Who lives behind an address: the distinct logged-in sessions seen from it, now and lately.

One address may carry one person (a home) or thousands (an office, a campus, a mobile
carrier's NAT, a reverse proxy without forwarded addresses). Banning it bans all of them, so
the evidence a ban needs grows with the number of honest sessions it would hurt: the shield
asks :meth:`Residents.count` before turning strikes into a ban, and lets a banned address that
has residents keep a token-only door (guard.py).

A session counts while it has a connection from the address (``arrive``/``leave`` pair up)
and for ``window`` seconds after its last one closed. Only sessions that authenticated count,
so an attacker cannot raise an address's threshold without logging in, and every session he
uses that way is one he can be banned by.

Memory is bounded: at most ``max_addresses`` addresses (least recently seen forgotten first:
a forgotten address falls back to the base threshold) and ``max_per_address`` sessions each
(beyond that the count saturates, which is already a threshold no flood from one address
reaches without also being cut off connection by connection). ``count`` is cached for a
second, because strikes come in floods and counting is linear in the sessions kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Residents"]

Clock = Callable[[], float]
_RECOUNT = 1.0  # seconds a count is reused before sessions are counted again


class _Address:
    __slots__ = ("counted", "counted_at", "sessions")

    def __init__(self) -> None:
        # session id -> [open connections from this address, time the last one closed]
        self.sessions: dict[int, list[float]] = {}
        self.counted = 0
        self.counted_at = float("-inf")


class Residents:
    def __init__(self, window: float = 3600.0, max_addresses: int = 100_000,
                 max_per_address: int = 4096, clock: Clock = time.monotonic) -> None:
        if window < 0 or max_addresses < 1 or max_per_address < 1:
            raise ValueError("window must be >= 0 and the maxima positive")
        self.window = window
        self.max_addresses = max_addresses
        self.max_per_address = max_per_address
        self.clock = clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def arrive(self, address: str, session_id: int) -> None:
        """A connection from ``address`` authenticated as ``session_id``."""
        entry = self._addresses.get(address)
        if entry is None:
            entry = self._addresses[address] = _Address()
            if len(self._addresses) > self.max_addresses:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(address)
        record = entry.sessions.get(session_id)
        if record is None:
            if len(entry.sessions) >= self.max_per_address:
                self._prune(entry, self.clock())
                if len(entry.sessions) >= self.max_per_address:
                    return  # saturated; see the module docstring
            record = entry.sessions[session_id] = [0.0, 0.0]
        record[0] += 1
        entry.counted_at = float("-inf")

    def leave(self, address: str, session_id: int) -> None:
        """That connection closed or logged out."""
        entry = self._addresses.get(address)
        record = entry.sessions.get(session_id) if entry is not None else None
        if record is None or record[0] <= 0:
            return
        record[0] -= 1
        record[1] = self.clock()

    def count(self, address: str) -> int:
        """Distinct sessions with a connection from ``address`` now or within ``window``."""
        entry = self._addresses.get(address)
        if entry is None:
            return 0
        now = self.clock()
        if now - entry.counted_at >= _RECOUNT:
            self._prune(entry, now)
            entry.counted, entry.counted_at = len(entry.sessions), now
            if not entry.sessions:
                del self._addresses[address]
                return 0
        return entry.counted

    def __len__(self) -> int:
        return len(self._addresses)

    def _prune(self, entry: _Address, now: float) -> None:
        horizon = now - self.window
        stale = [sid for sid, (live, left) in entry.sessions.items()
                 if live <= 0 and left < horizon]
        for sid in stale:
            del entry.sessions[sid]
