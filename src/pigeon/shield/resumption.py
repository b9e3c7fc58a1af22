"""Resumption tickets: a known session comes back without a database read (issue 13).

After a restart every device says ``hello`` with its session token, and checking a token is
two reads of the database (the session by its hash, then its user) plus a third once
attached (a terminate racing the hello, issue 7). Ten thousand of them at once queue behind
each other on the reader threads while the people already back are trying to chat. A
device that presents the ticket it was given at its last welcome is checked here instead,
from memory: an HMAC under a key derived from the shield's secret (so it survives a
restart, as the secret does), an expiry, and the **live sessions**, a map of the sessions
that exist (loaded from the sessions table at start, kept up to date as sessions are created
and ended). A session that was logged out or terminated is gone from the map before its
devices are told, so its ticket is refused: revocation wins. A ticket that fails for any
reason (forged, expired, another server's, a session the bounded map forgot) is not an
error: the hello takes the long way, the token checked against the database, as before.

The ticket is bound to the session's token: its MAC covers the token's hash too, which the
ticket does not carry. A ticket alone (read from a log, say) lets nobody in.

With several workers or nodes (issue 12) each keeps its own map; a revocation reaches the
others over the bus (``Bus.revoke_sessions``, to every process), which calls :meth:`revoke`
there before it cuts their connections. Only while the bus says every revocation reaches
this process (``current``) is a ticket enough: a process cut off from NATS, or told that
another could not get a revocation out, forgets every session (:meth:`forget`), and
until it is back hellos take the long way and nothing is added.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable

from pigeon.protocol.resumption import Claims, format_ticket, parse_ticket

__all__ = ["Resumption"]

_KEY_LABEL = b"pigeon resumption ticket v1"


class Resumption:
    def __init__(self, secret: bytes, ttl: float, *, max_sessions: int = 1_000_000,
                 clock: Callable[[], float] = time.time,
                 current: Callable[[], bool] = lambda: True) -> None:
        # A key of its own, derived from the shield's secret: a challenge token can never
        # pass for a ticket, nor the other way round.
        self._key = hmac.digest(secret, _KEY_LABEL, "sha256")
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.clock = clock
        self.current = current  # whether every revocation made anywhere reaches us now
        self._live: dict[int, int] = {}  # session id -> user id, oldest first
        self.resumed = 0   # hellos let in by a ticket
        self.declined = 0  # tickets that sent the hello the long way
        self.epoch = 0  # times every session was forgotten (revocations maybe missed)

    # -- the live sessions -----------------------------------------------------------------
    def load(self, sessions: Iterable[tuple[int, int]]) -> None:
        """At start: (session id, user id) pairs, the most recently active first."""
        if not self.current():
            return  # read while revocations may be missed: not to be trusted
        for session_id, user_id in sessions:
            if len(self._live) >= self.max_sessions:
                break
            self._live.setdefault(session_id, user_id)

    def since(self) -> int | None:
        """Taken before reading a session from the store, given back to :meth:`live`: None
        while revocations may be missed, else the count of forgettings so far."""
        return self.epoch if self.current() else None

    def live(self, session_id: int, user_id: int, since: int | None = -1) -> None:
        """A session was created, or its token checked against the database. ``since``
        (from :meth:`since`, before the read): the session is remembered only if no
        revocation could have been missed from then on (-1: now)."""
        self._live.pop(session_id, None)
        if since == -1:
            since = self.since()
        if self.max_sessions <= 0 or since != self.epoch or not self.current():
            return
        if len(self._live) >= self.max_sessions:
            # Forgetting is safe: a forgotten session's ticket takes the long way.
            del self._live[next(iter(self._live))]
        self._live[session_id] = user_id

    def revoke(self, session_ids: Iterable[int]) -> None:
        for session_id in session_ids:
            self._live.pop(session_id, None)

    def forget(self) -> None:
        """Revocations may have been missed: no session is known live any more (each comes
        back as its token is checked the long way)."""
        self._live.clear()
        self.epoch += 1

    def __len__(self) -> int:
        return len(self._live)

    # -- tickets ---------------------------------------------------------------------------
    def _mac(self, claims: Claims, token: str) -> bytes:
        token_hash = hashlib.sha256(token.encode()).digest()
        return hmac.digest(self._key, claims.encode() + token_hash, "sha256")

    def issue(self, session_id: int, user_id: int, token: str) -> str:
        claims = Claims(session_id, user_id, int(self.clock() + self.ttl))
        return format_ticket(claims, self._mac(claims, token))

    def check(self, ticket: str, token: str) -> tuple[int, int] | None:
        """(session id, user id) if the ticket is this server's, for this token, unexpired
        and its session live; otherwise None (the caller checks the token the long way)."""
        parsed = parse_ticket(ticket)
        if parsed is not None:
            claims, mac = parsed
            if (hmac.compare_digest(mac, self._mac(claims, token))
                    and claims.expires > self.clock()
                    and self.current()
                    and self._live.get(claims.session_id) == claims.user_id):
                self.resumed += 1
                return claims.session_id, claims.user_id
        self.declined += 1
        return None

    def stats(self) -> dict[str, int]:
        return {"live_sessions": len(self._live), "resumed": self.resumed,
                "declined": self.declined, "forgotten": self.epoch}
