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
from .settings import Settings

if TYPE_CHECKING:
    from .connection import Connection


def load_or_create_secret(data: Path) -> bytes:
    """The server's HMAC key for login codes, kept beside (not inside) the database, so that
    a leaked database alone does not let anyone test 6-digit codes offline."""
    path = data / "secret.key"
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
    # The service account's id once known (server/service_account.py); None: not looked up.
    service_user: int | None = None

    def __post_init__(self) -> None:
        self.shield.on_ban = self._close_banned

    def _close_banned(self, address: str) -> None:
        for conn in list(self.by_address.get(address, ())):
            conn.close(1008, "BANNED")

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
    def session_id(self) -> int:
        self.user_id  # noqa: B018 - raises when logged out
        assert self.connection.session_id is not None
        return self.connection.session_id
