"""What one account may hold on this server: connections, bytes queued for its devices, and
heavy calls running at once.

Issue 7 found one account able to take the server from 63 MiB to 2 GiB by pipelining
``get_difference`` on a connection it never read, and to fill all 300 slots of a small server
with its own connections. The bounds here make that account hurt only itself:

* **connections**: at most ``max_connections_per_session`` per session (a device that
  reconnects while its old socket still looks open: the oldest is closed, the newest wins)
  and ``max_connections_per_account`` per account (one more is refused with
  ``TOO_MANY_CONNECTIONS``: closing an existing device to admit a new one would let two of
  them knock each other off for ever);
* **bytes queued**: the connections of an account together may hold
  ``outbox_bytes_account`` bytes of unsent frames before the server stops reading all of
  them and holds their heavy calls (each connection also has its own bound, kept in
  :class:`~pigeon.server.connection.Connection`);
* **heavy calls**: at most ``bulk_calls_per_account`` of an account's bulk calls (history,
  differences, lists) run at once, so one account cannot hold many multi-megabyte results
  in the making.

Everything is in-process state of this node, dropped as soon as the account's last
connection goes: nothing here outlives the connections it describes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.protocol.errors import RateLimited

if TYPE_CHECKING:
    from .connection import Connection
    from .settings import Settings

# How long a refused or replaced device should wait before trying again: long enough that a
# device does not spin, short enough that a slot freed by another device is used soon.
RETRY_AFTER = 15.0


class AccountQuota:
    def __init__(self, settings: Settings) -> None:
        self.per_account = settings.max_connections_per_account
        self.per_session = settings.max_connections_per_session
        self.account_bytes_bound = settings.outbox_bytes_account
        self.bulk_per_account = settings.bulk_calls_per_account
        self._conns: dict[int, list[Connection]] = {}  # user -> connections, oldest first
        self._bytes: dict[int, int] = {}  # user -> bytes queued on all its connections
        self._bulk: dict[int, int] = {}   # user -> bulk calls running

    # -- connections ------------------------------------------------------------------------
    def admit(self, conn: Connection, user_id: int, session_id: int) -> None:
        """Make room for ``conn`` as (user, session), or raise TOO_MANY_CONNECTIONS. Call
        :meth:`join` right after, in the same step of the event loop, so that many hellos
        at once cannot all pass the check before any of them counts."""
        conns = self._conns.get(user_id, [])
        same = [c for c in conns if c.session_id == session_id and c is not conn]
        if len(same) >= self.per_session:
            for oldest in same[: len(same) - self.per_session + 1]:
                oldest.replaced()
        else:
            self.ensure_room(user_id, conn)

    def ensure_room(self, user_id: int, conn: Connection) -> None:
        """Raise TOO_MANY_CONNECTIONS if the account cannot take one more connection."""
        if len([c for c in self._conns.get(user_id, ()) if c is not conn]) >= self.per_account:
            raise RateLimited(
                f"this account already has {self.per_account} connections; close one on "
                "another device or try again later",
                code="TOO_MANY_CONNECTIONS", retry_after=RETRY_AFTER)

    def join(self, conn: Connection, queued: int) -> None:
        assert conn.user_id is not None
        self._conns.setdefault(conn.user_id, []).append(conn)
        self.add_bytes(conn.user_id, queued)

    def leave(self, conn: Connection, queued: int) -> None:
        user_id = conn.user_id
        assert user_id is not None
        conns = self._conns.get(user_id)
        if conns is not None and conn in conns:
            conns.remove(conn)
            self.add_bytes(user_id, -queued)
            if not conns:
                # Forget the account; its bulk count stays only while such calls still run.
                del self._conns[user_id]
                self._bytes.pop(user_id, None)
            else:
                self.wake(user_id)

    def connections(self, user_id: int) -> list[Connection]:
        return list(self._conns.get(user_id, ()))

    # -- bytes queued -----------------------------------------------------------------------
    def add_bytes(self, user_id: int, delta: int) -> None:
        if user_id not in self._conns:
            return
        before = self._bytes.get(user_id, 0)
        after = before + delta
        self._bytes[user_id] = after
        if after <= self.account_bytes_bound < before:
            self.wake(user_id)  # its devices may be read again
        elif after > 4 * self.account_bytes_bound:
            # A hard bound as well: past four times the soft one, the connection that holds
            # the most is cut at once (pushes keep coming even to a connection not read).
            worst = max(self._conns[user_id], key=lambda c: c.queued_bytes)
            worst.slow_consumer()

    def over(self, user_id: int | None) -> bool:
        return user_id is not None and self._bytes.get(user_id, 0) > self.account_bytes_bound

    # -- heavy calls ------------------------------------------------------------------------
    def try_bulk(self, user_id: int) -> bool:
        running = self._bulk.get(user_id, 0)
        if running >= self.bulk_per_account or self.over(user_id):
            return False
        self._bulk[user_id] = running + 1
        return True

    def end_bulk(self, user_id: int) -> None:
        running = self._bulk.get(user_id, 0)
        if running <= 1:
            self._bulk.pop(user_id, None)
        else:
            self._bulk[user_id] = running - 1
        self.wake(user_id)

    def wake(self, user_id: int) -> None:
        for conn in self._conns.get(user_id, ()):
            conn.wake()
