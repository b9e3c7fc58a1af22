"""What a request handler may use: the shared services, and who is calling."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from pigeon.bus import Bus
from pigeon.bus.base import Identity
from pigeon.protocol.errors import Unauthorized
from pigeon.shield.guard import Shield
from pigeon.shield.resumption import Resumption
from pigeon.store import Store

from .codes import CodeSender
from .metrics import Metrics
from .quota import AccountQuota
from .settings import Settings

if TYPE_CHECKING:
    from .connection import Connection
    from .media_files import MediaService
    from .regions import RegionLink


SECRET_FILE = "secret.key"  # the login-code key, in the data directory


def load_or_create_secret(data: Path) -> bytes:
    """The server's HMAC key for login codes, kept beside (not inside) the database, so that
    a leaked database alone does not let anyone test 6-digit codes offline."""
    path = data / SECRET_FILE
    if path.exists():
        return path.read_bytes()
    data.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(key)
    tmp.chmod(0o600)
    tmp.rename(path)
    return key


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: Bus
    codes: CodeSender
    metrics: Metrics
    secret: bytes
    shield: Shield
    connections: set[Connection] = field(default_factory=set)
    by_address: dict[str, set[Connection]] = field(default_factory=dict)
    clock: Any = time.time
    quota: AccountQuota = field(init=False)
    resumption: Resumption = field(init=False)
    # The service account's id once known (server/service_account.py); None: not looked up.
    service_user: int | None = None
    # Uploads and files (server/media_files.py): an account's go with it (admin delete).
    media: MediaService | None = None
    # The link to the other regions (server/regions.py); None: one region.
    regions: RegionLink | None = None
    # Set by a planned stop: connections start no new call (server/stopping.py).
    stopping: bool = False
    # Seconds a going-away notice tells devices to stay away: restart_downtime, or this
    # server's measured restart (server/restart_times.py), set once it listens.
    downtime: float = 5.0

    def __post_init__(self) -> None:
        penalties = self.shield.penalties
        penalties.on_address_ban = self._close_banned_address
        penalties.on_session_ban = self._close_banned_session
        penalties.on_account_ban = self._close_banned_account
        self.quota = AccountQuota(self.settings)
        self.resumption = Resumption(self.secret, self.settings.resume_ticket_ttl,
                                     max_sessions=self.settings.resume_max_sessions,
                                     clock=self.clock,
                                     current=lambda: self.bus.revocations_current)
        # Sessions ended through other processes end here too (issue 13).
        self.bus.on_revocations(self.resumption.revoke, self.resumption.forget)

    def end_sessions(self, user_id: int, session_ids: Iterable[int], reason: str) -> None:
        """Sessions were deleted: their tickets stop working, then their devices are told.
        Both at once, with no await between: a hello that resumed one of them meanwhile is
        attached by now, and the revoke finds it."""
        ended = list(session_ids)
        self.resumption.revoke(ended)
        self.bus.revoke_sessions(user_id, ended, reason)

    def _close_banned_address(self, address: str) -> None:
        # Only strangers: a session that logged in with a valid token from this address is
        # not the culprit, and may well be one of hundreds behind the same NAT.
        for conn in list(self.by_address.get(address, ())):
            if conn.user_id is None:
                conn.close(1008, "BANNED")

    def _close_banned_session(self, session_id: int, seconds: float) -> None:
        for conn in [c for c in self.connections if c.session_id == session_id]:
            conn.banned(seconds)

    def _close_banned_account(self, user_id: int, seconds: float) -> None:
        for conn in [c for c in self.connections if c.user_id == user_id]:
            conn.banned(seconds, "account")

    def code_hash(self, code_id: str, code: str) -> bytes:
        return hmac.digest(self.secret, f"{code_id}:{code}".encode(), "sha256")


class Device(Identity, Protocol):
    """The device a call came from, as a handler may see it: who it is logged in as (a
    session terminated mid-call is logged out at once) and what a handler may do to it.
    Narrow on purpose: handlers never hold the connection, whose transport, outbox and
    protocol state are no business of theirs, and which a server of several workers
    (issue 12) would not have in the process that runs the handler."""

    def ensure_room(self, user_id: int) -> None:
        """TOO_MANY_CONNECTIONS if ``user_id``'s account could not take this device."""

    def log_in(self, user_id: int, session_id: int) -> None:
        """From now on this device is that session (TOO_MANY_CONNECTIONS if no room)."""

    def log_out(self) -> None:
        """This device is no longer logged in; it stays open to carry the answer."""

    def follow(self, streams: Iterable[str]) -> None:
        """The logged-in device follows these streams (large chats' ones), if it reads any."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as plain data, and the device they call from."""

    services: Services
    device: Device
    address: str  # the peer's address (behind a trusted proxy, the client's)
    version: int  # the protocol version the device negotiated
    proven: bool = False  # the call came with solved proof of work (Shield.prove)

    @property
    def user_id(self) -> int:
        user_id = self.device.user_id
        if user_id is None:
            raise Unauthorized("log in first", code="AUTH_REQUIRED")
        return user_id

    @property
    def session_id(self) -> int:
        self.user_id  # noqa: B018 - raises when logged out
        session_id = self.device.session_id
        assert session_id is not None
        return session_id
