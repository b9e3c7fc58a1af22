"""Pacing returning devices at accept: the herd comes back in order (issue 13).

After a crash every device comes back, all from addresses the shield knows (its users'), so
nothing rations them: ten thousand sockets arrive within seconds, each asks for an HTTP
upgrade and a hello, and the event loop that also serves the people already back spends
seconds at a time on handshakes. Worse, the handshakes all progress together and finish
late, past the devices' own timeouts: they give up and come again (measured: 21,754 failed
handshakes for 10,000 devices, the slowest back 39 s after the server listened).

So handshakes from known addresses are **limited in number, not in rate**: at most
``max_pending`` of them at once. A socket past that is answered at once (``503`` with
``Retry-After``, no HTTP parser, no WebSocket) with **its own slot**: the slots are booked
one after another at the rate handshakes are measured to finish, so the refused come back
spread over exactly the time the server needs to take them, instead of at random. A slot
is never further than ``window_max`` away (then the device's own backoff spreads it more).
The rate starts at the one a restart's window assumes (``rate``, the
``restart_reconnect_rate`` that the going-away notice and the welcome's
``reconnect_window`` are sized by) and follows the handshakes that finished in each second
while sockets were being turned away (a second with none turned away says nothing about
capacity), smoothed, never under ``min_rate`` (by default ``rate`` itself: a second in
which a full garbage collection or a neighbour stalled the process must not spread the
herd over minutes; a device that finds its slot taken is given the next).

Pure: the caller tells it when a paced handshake starts (:meth:`admit`), and when it ends,
logged in or not (:meth:`finished`); the clock is injected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["ReturnPacer"]


class ReturnPacer:
    def __init__(self, max_pending: int, window_max: float, rate: float = 250.0,
                 min_rate: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        min_rate = rate if min_rate is None else min_rate
        if max_pending < 1 or window_max < 0 or min_rate <= 0 or rate <= 0:
            raise ValueError("need max_pending >= 1, window_max >= 0 and positive rates")
        self.max_pending = max_pending
        self.window_max = window_max
        self.min_rate = min(min_rate, rate)
        self.clock = clock
        self.pending = 0           # paced handshakes under way
        self.rate = rate           # handshakes finished per second, measured while full
        self._booked = 0.0         # the last slot handed out
        self._second = math.floor(clock())
        self._finished = 0         # handshakes finished in this second ...
        self._turned_away = False  # ... and whether any socket was turned away in it
        self.admitted = 0
        self.deferred = 0

    def admit(self) -> float:
        """0.0: let this socket in now (its handshake counts as pending until
        :meth:`finished`); otherwise the seconds after which it should come back."""
        now = self.clock()
        self._roll(now)
        if self.pending < self.max_pending:
            self.pending += 1
            self.admitted += 1
            return 0.0
        self._turned_away = True
        self.deferred += 1
        self._booked = max(self._booked, now) + 1.0 / self.rate
        if self._booked - now > self.window_max:
            self._booked = now + self.window_max  # the device's jitter spreads the rest
        return self._booked - now

    def finished(self, logged_in: bool) -> None:
        """A paced handshake ended: the device logged in, or the socket closed before."""
        self.pending = max(0, self.pending - 1)
        if logged_in:
            self._roll(self.clock())
            self._finished += 1

    def _roll(self, now: float) -> None:
        second = math.floor(now)
        if second == self._second:
            return
        if self._turned_away and second == self._second + 1:
            # A full second in which the pool was the limit: what finished is the capacity.
            self.rate = max(self.min_rate, 0.5 * self.rate + 0.5 * self._finished)
        self._second, self._finished, self._turned_away = second, 0, False

    def stats(self) -> dict[str, float | int]:
        return {"pending": self.pending, "rate": round(self.rate, 1),
                "admitted": self.admitted, "deferred": self.deferred}
