"""The bus: how an update reaches the devices that are online, wherever they are connected.

The server talks to :class:`Bus` only. Today's implementation is :class:`~.local.LocalBus`
(every device of this process); issue 12 adds one over NATS so that a write in one worker
reaches a device connected to another. The interface is shaped for that:

* **Addresses, not objects.** A recipient is named by what any worker can know: a stream, a
  user id, a session id. Exclusion ("everyone but the one that sent it") is by plain ids,
  never by a connection object, which does not exist outside the process that holds it: by
  session id (every connection of that session), or by sink id (the one connection that
  made the call: its answer carries what it wrote, while other processes sharing its
  session, such as a CLI follower beside one-shot sends on one profile, still need the
  push to keep their position moving).
* **Synchronous, in call order.** A handler calls the bus right after the commit that
  numbered the updates; every call returns before the next write can be numbered, so each
  device sees its stream in sequence order. A networked bus keeps that by appending to its
  outbound buffer in order (NATS' publish does, without awaiting the server) and delivering
  to its own process's sinks at once: the local fast path. The counts returned are of
  devices reached in this process; a device elsewhere that misses an item finds the gap and
  asks for the difference, as after any lost push.
* **Sinks are local.** :meth:`Bus.attach` and :meth:`Bus.subscribe` take the process's own
  connections; a networked bus subscribes to the matching subjects on their behalf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pigeon.store.base import Push


class Identity(Protocol):
    """Who a device is logged in as: read when asked (None while logged out), since a
    session may be terminated at any moment; and the id of its connection on the bus."""

    @property
    def sink_id(self) -> int:
        """This connection's id, unique within the deployment (today: within the process;
        workers of a shared bus draw from disjoint ranges)."""

    @property
    def user_id(self) -> int | None: ...

    @property
    def session_id(self) -> int | None: ...


class Sink(Identity, Protocol):
    """What the bus delivers to: one connected, logged-in device."""

    @property
    def reads_streams(self) -> bool:
        """Whether the device reads items of streams besides its user's (protocol version 2
        on): only such a device is subscribed to chat streams."""

    def push(self, update: Any) -> None:
        """An update of the user's own stream (``user:<id>``), its ``pts`` stamped."""

    def push_item(self, stream: str, item: Any) -> None:
        """An item of another stream the device follows: an update whose ``pts`` is its
        ``seq`` in ``stream``."""

    def revoke(self, reason: str) -> None:
        """The device's session was terminated."""


class Bus(Protocol):
    # -- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Before the server listens (a networked bus connects, or keeps trying in the
        background while serving its own process's devices)."""

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """``kind``, whether it is ``connected`` and its counters: for /healthz and
        /metrics."""

    # -- who is here ----------------------------------------------------------------------
    def attach(self, sink: Sink) -> None:
        """A device logged in: from now on it gets its user's updates."""

    def detach(self, sink: Sink) -> None:
        """It logged out or went away; also ends its stream subscriptions."""

    def subscribe(self, sink: Sink, stream: str) -> None:
        """The device follows ``stream`` (a chat's, a device inbox) besides its user's."""

    def unsubscribe(self, sink: Sink, stream: str) -> None: ...

    def subscribe_user(self, user_id: int, stream: str) -> None:
        """Every device of ``user_id`` that reads streams follows ``stream`` from now on
        (they joined a large chat); a networked bus does it in every process."""

    def unsubscribe_user(self, user_id: int, stream: str) -> None:
        """No device of ``user_id`` follows ``stream`` any more (they left it)."""

    # -- delivery -------------------------------------------------------------------------
    def publish(self, stream: str, item: Any, exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        """``item`` to every attached device that follows ``stream``, except those of
        session ``exclude_session`` and the one of ``exclude_sink``. Returns how many were
        reached."""

    def deliver(self, pushes: Iterable[Push], exclude_session: int | None = None, *,
                exclude_sink: int | None = None) -> int:
        """Each push to every online device of its target users, each stamped with its
        user's ``pts``; not to those of session ``exclude_session``, nor to the one of
        ``exclude_sink`` (the caller, who has its answer). Returns how many were reached."""

    def deliver_ephemeral(self, user_ids: Iterable[int], update: Any) -> None:
        """An update that takes no position (typing) to every online device of each user."""

    def push_to_session(self, user_id: int, session_id: int, update: Any) -> int:
        """An update of ``user_id``'s stream to the one device of ``session_id``."""

    def revoke_sessions(self, user_id: int, session_ids: Iterable[int], reason: str) -> None:
        """Tell the devices of these sessions of ``user_id`` that they were terminated; a
        networked bus tells every process, whether or not a device of the user is there."""

    # -- revocations for resumption tickets (issue 13) ------------------------------------
    def on_revocations(self, revoked: Callable[[list[int]], None],
                       unsure: Callable[[], None]) -> None:
        """Call ``revoked(session_ids)`` when another process ended sessions (before this
        process's devices of them are told), and ``unsure()`` when this process may have
        missed some (a networked bus lost its connection, or another process could not get
        its revocations out): what a process remembers of live sessions must be forgotten."""

    @property
    def revocations_current(self) -> bool:
        """Whether every revocation made elsewhere reaches this process now (in-process:
        always; over NATS: while connected)."""

    # -- figures for /metrics and the account quota (this process) -----------------------
    def online_devices(self, user_id: int) -> int: ...

    def connection_count(self) -> int: ...
