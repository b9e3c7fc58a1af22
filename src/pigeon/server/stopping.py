"""A planned stop's part with the connections (issue 13), bounded so that the port is closed
no longer than the going-away notice announces, whatever the peers do.

1. No call is started any more; the calls in flight get ``stop_drain_seconds`` to be answered.
   A call still running then is not answered (its commit, if it reaches one, is kept: the
   store is closed after it) and the SDK sends it again with the same ``random_id`` to the
   next server, which answers it from what was committed.
2. Every device gets the notice and the close frame with its retry hint: the downtime it
   announces is what this server's restarts really take (restart_times.py).
   They are written straight to the socket, which closes once they are out: the stop does not
   wait for each peer's side of the close handshake. When the process ends after the stop
   (``pigeon serve``, each worker of ``--workers``), the sockets instead stop reading and
   only half-close: their handlers are never woken, and the exit closes them.
3. ``stop_close_seconds`` later, every socket that has still not taken all of it is dropped:
   a peer that reads nothing does not hold the stop.

Each phase is logged at info level with the time since the stop began, so an operator sees
where a slow stop's time went.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from .connection import going_away_notice, going_away_reason
from .services import Services

log = logging.getLogger("pigeon.server")


class StopClock:
    """Seconds since the stop began, for the phase lines in the log."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.noticed: float | None = None  # when the going-away notice was out

    def notice(self) -> None:
        self.noticed = time.monotonic()

    def since_notice(self) -> float | None:
        return None if self.noticed is None else time.monotonic() - self.noticed

    def phase(self, what: str, *args: object) -> None:
        log.info("stop +%.2f s: " + what, time.monotonic() - self.began, *args)

    async def bounded(self, what: str, step: Awaitable[None], seconds: float) -> None:
        """Await one part of the stop for at most ``seconds``: past that it is left behind
        (the process is ending) and the log says which part it was."""
        try:
            await asyncio.wait_for(step, seconds)
        except TimeoutError:
            self.phase("%s did not finish within %g s; going on without it", what, seconds)


async def close_connections(services: Services, clock: StopClock, *,
                            ending: bool = False) -> None:
    """Answer what can be answered in time, warn every device, and close every socket
    (``ending``: leave the closing to the process's exit)."""
    settings = services.settings
    services.stopping = True
    conns = list(services.connections)
    calls = [task for conn in conns for task in conn.in_flight()]
    left: set[asyncio.Task[None]] = set()
    if calls:
        _, left = await asyncio.wait(calls, timeout=settings.stop_drain_seconds)
    clock.phase("calls in flight answered: %d of %d (the rest are retried by their devices)",
                len(calls) - len(left), len(calls))
    conns = list(services.connections)  # with any whose upgrade finished meanwhile
    window = settings.restart_window(len(conns))
    downtime = services.downtime
    notice, reason = going_away_notice(downtime, window), going_away_reason(downtime, window)
    for conn in conns:
        if ending:
            conn.last_words(notice, reason)
        else:
            conn.shutting_down(downtime, window)
            conn.say_goodbye()
    clock.notice()
    clock.phase("going-away notice sent to %d connections (back in %g s plus up to %g s)",
                len(conns), downtime, window)
    deadline = time.monotonic() + settings.stop_close_seconds
    # Its socket has written everything (and closes by itself) or not: whether its handler
    # has run its last lines yet does not matter (aiohttp's shutdown, or the exit, ends them).
    # Most have at once: a notice is a few hundred bytes.
    stragglers = [conn for conn in conns if conn.unsent_bytes()]
    while stragglers and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        stragglers = [conn for conn in stragglers if conn.unsent_bytes()]
    for conn in stragglers:
        conn.abort()
    clock.phase("connections closed: %d with everything written, %d dropped",
                len(conns) - len(stragglers), len(stragglers))
