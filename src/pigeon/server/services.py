"""What a request handler may use: the shared services, and who is calling."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pigeon.bus import LocalBus
from pigeon.protocol.errors import Unauthorized
from pigeon.shield.guard import Shield
from pigeon.store import Store

from .codes import CodeSender
from .metrics import Metrics
from .quota import AccountQuota
from .settings import Settings

if TYPE_CHECKING:
    from .connection import Connection


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
    bus: LocalBus
    codes: CodeSender
    metrics: Metrics
    secret: bytes
    shield: Shield
    connections: set[Connection] = field(default_factory=set)
    by_address: dict[str, set[Connection]] = field(default_factory=dict)
    clock: Any = time.time
    quota: AccountQuota = field(init=False)
    # The service account's id once known (server/service_account.py); None: not looked up.
    service_user: int | None = None

    def __post_init__(self) -> None:
        penalties = self.shield.penalties
        penalties.on_address_ban = self._close_banned_address
        penalties.on_session_ban = self._close_banned_session
        penalties.on_account_ban = self._close_banned_account
        self.quota = AccountQuota(self.settings)

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


@dataclass
class Caller:
    """The connection a call came in on, and the session it is logged in as (if any)."""

    services: Services
    connection: Connection
    address: str
    proven: bool = False  # the call came with solved proof of work (Shield.prove)

    @property
    def user_id(self) -> int:
        if self.connection.user_id is None:
            raise Unauthorized("log in first", code="AUTH_REQUIRED")
        return self.connection.user_id

    @property
    def version(self) -> int:
        """The protocol version the connection negotiated."""
        return self.connection.protocol.version

    @property
    def session_id(self) -> int:
        self.user_id  # noqa: B018 - raises when logged out
        assert self.connection.session_id is not None
        return self.connection.session_id
