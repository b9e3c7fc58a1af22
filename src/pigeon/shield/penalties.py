"""Who pays for a strike: the session that misbehaved, or else its address, in proportion.

Bans used to fall on addresses alone, and an address is often many people: one client
sending malformed frames from an office NAT, a campus or a carrier's NAT cut off every
logged-in session behind it for ten minutes (issue 7, finding 10). The rules here:

* **A logged-in connection's strikes are its session's.** ``ban_strikes`` of them within
  ``ban_window`` refuse that session for ``ban_seconds`` (its connections are closed and its
  token is refused at hello with ``BANNED``); ``ban_account_sessions`` session bans within
  ``ban_seconds`` refuse the whole account for as long. Its address is not struck.
* **An address needs evidence proportional to who uses it.** A stranger's strikes count
  against the address, but the strikes that ban it are ``ban_strikes × (1 + residents)``,
  where residents are the distinct logged-in sessions seen from it within
  ``ban_shared_window`` (residents.py).
* **An address ban never cuts off a logged-in session.** Only the address's unauthenticated
  connections are closed. And a banned address that logged-in sessions use (one this server
  remembers) keeps a **token-only door**: it may still open a few sockets
  (``ban_door_rate`` per resident session), each of which must say ``hello`` with a valid
  session token or is closed with ``BANNED``. Sign-ups and sign-ins from it wait for the ban
  to end. Such bans stay in process, never in the kernel's nftables set, which would shut
  the door too; bans of addresses nobody logged in from are mirrored as before.

Everything here is bounded and clock-driven, so tests drive it with a fake clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pigeon.protocol.errors import RateLimited

from .bans import Mirror
from .ratelimit import Rate
from .residents import Residents
from .state import MemoryShieldState, ShieldState

__all__ = ["Penalties"]

Clock = Callable[[], float]


class Penalties:
    def __init__(self, settings: Any, *, clock: Clock = time.monotonic,
                 mirror: Mirror | None = None, state: ShieldState | None = None) -> None:
        self.clock = clock
        if state is None:
            state = MemoryShieldState(clock=clock, max_known=settings.max_known_addresses)
        self.addresses = state.bans("addresses", strikes=settings.ban_strikes,
                                    window=settings.ban_window, duration=settings.ban_seconds,
                                    mirror=mirror, may_mirror=self._may_mirror)
        self.sessions = state.bans("sessions", strikes=settings.ban_strikes,
                                   window=settings.ban_window, duration=settings.ban_seconds)
        self.accounts = state.bans("accounts", strikes=settings.ban_account_sessions,
                                   window=settings.ban_seconds, duration=settings.ban_seconds)
        # Who is connected from where right now: this worker's own connections, so it stays
        # here (each worker counts its own; the threshold is then per worker's view).
        self.residents = Residents(window=settings.ban_shared_window, clock=clock)
        self.door = state.limiter("ban_door", Rate.parse(settings.ban_door_rate))
        # Addresses that logged-in sessions came from, remembered longer than residents
        # (and reloaded from the sessions table at start): the accept-time rationing of
        # strangers and the token-only door both ask it.
        self.known = state.known
        # Called to close what a ban shuts out (wired by the server's services):
        # on_address_ban(address) its unauthenticated connections only;
        # on_session_ban(session_id, seconds) and on_account_ban(user_id, seconds) all.
        self.on_address_ban: Callable[[str], None] | None = None
        self.on_session_ban: Callable[[int, float], None] | None = None
        self.on_account_ban: Callable[[int, float], None] | None = None
        # A ban that another worker's strikes earned closes what it shuts out here too.
        self.addresses.on_remote_ban = self._address_banned_elsewhere
        self.sessions.on_remote_ban = self._session_banned_elsewhere
        self.accounts.on_remote_ban = self._account_banned_elsewhere

    def _address_banned_elsewhere(self, target: str, seconds: float) -> None:
        if self.on_address_ban is not None and "/" not in target:
            self.on_address_ban(target)

    def _session_banned_elsewhere(self, key: str, seconds: float) -> None:
        if self.on_session_ban is not None and key.startswith("session:"):
            self.on_session_ban(int(key.removeprefix("session:")), seconds)

    def _account_banned_elsewhere(self, key: str, seconds: float) -> None:
        if self.on_account_ban is not None and key.startswith("account:"):
            self.on_account_ban(int(key.removeprefix("account:")), seconds)

    # -- who lives where --------------------------------------------------------------------
    def remember(self, address: str) -> None:
        """A session logged in from this address (now, or before a restart)."""
        self.known.remember(address)

    def arrive(self, address: str, session_id: int) -> None:
        self.remember(address)
        self.residents.arrive(address, session_id)

    def leave(self, address: str, session_id: int) -> None:
        self.residents.leave(address, session_id)

    def strikes_needed(self, address: str) -> int:
        return self.addresses.strikes * (1 + self.residents.count(address))

    # -- strikes ----------------------------------------------------------------------------
    def strike(self, address: str, reason: str, session_id: int | None = None,
               user_id: int | None = None) -> None:
        if session_id is not None:
            self._strike_session(session_id, user_id, reason)
            return
        if self.addresses.banned(address):
            # Refused already; a door connection's bad token must not close the others that
            # are still saying hello with good ones.
            return
        if self.addresses.strike(address, reason, needed=self.strikes_needed(address)):
            if self.on_address_ban is not None:
                self.on_address_ban(address)

    def _strike_session(self, session_id: int, user_id: int | None, reason: str) -> None:
        key = f"session:{session_id}"
        if self.sessions.banned(key):
            return  # its connections were closed when the ban began; nothing more to learn
        seconds = self.sessions.strike(key, reason)
        if not seconds:
            return
        if self.on_session_ban is not None:
            self.on_session_ban(session_id, seconds)
        if user_id is not None:
            account = self.accounts.strike(f"account:{user_id}", "sessions_banned")
            if account and self.on_account_ban is not None:
                self.on_account_ban(user_id, account)

    # -- refusing ---------------------------------------------------------------------------
    def door_open(self, address: str) -> bool:
        """May a socket from this banned address come in, to log in with a token only?"""
        residents = self.residents.count(address)
        if not residents and address not in self.known:
            return False
        return self.door.take(address, 1.0 / (1 + residents)) == 0.0

    def check_session(self, session_id: int, user_id: int) -> None:
        """Raise BANNED if this session, or its account, is refused for now."""
        left = max(self.sessions.banned(f"session:{session_id}"),
                   self.accounts.banned(f"account:{user_id}"))
        if left > 0:
            raise RateLimited(f"this session is refused for {math.ceil(left)} s after "
                              "repeated abuse", code="BANNED", retry_after=round(left, 3))

    def check_account(self, user_id: int) -> None:
        left = self.accounts.banned(f"account:{user_id}")
        if left > 0:
            raise RateLimited(f"this account is refused for {math.ceil(left)} s after "
                              "repeated abuse", code="BANNED", retry_after=round(left, 3))

    def stats(self) -> dict[str, object]:
        return {
            "banned_sessions": self.sessions.stats()["banned_addresses"],
            "banned_accounts": self.accounts.stats()["banned_addresses"],
            "shared_addresses": len(self.residents),
        }

    def _may_mirror(self, target: str) -> bool:
        if "/" in target:
            return not self.known.holds_prefix(target)
        return target not in self.known
