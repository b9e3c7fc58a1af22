"""Full garbage collections wait while the herd comes back (issue 13).

CPython runs a full (generation 2) collection whenever the objects that survived the young
collections since the last full one reach a quarter of those that survived it. A server
taking ten thousand devices back grows from nothing to ten thousand connections' objects,
so it runs about ten full collections during the storm, each walking every object it holds:
measured on the 2-core machine, the last ones took 0.9 to 1.8 s, and every one of the
storm's worst seconds (event-loop lag 0.5 to 1.9 s, every send of that second late) was
one of them.

So while devices are coming back faster than ``storm_rate`` a second (sockets the return
pacer admitted or turned away, shield/pacing.py), the automatic full collections are held:
generation 2's threshold is raised out of reach, and the young collections, which find
almost all the garbage a server makes (a call's objects), go on. ``quiet`` seconds after the
storm, or after ``max_hold`` seconds at most (what waits is long-lived garbage only, such as
closed connections; then the collector has ``2 * quiet`` seconds before the next hold), the
thresholds are restored and the collector catches up on its own: one full collection
instead of ten, after the herd is in.

:meth:`tick` is called once a second; the collector module and the clock are injected.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CollectionHold", "settle_collector"]

OUT_OF_REACH = 1 << 30  # generation 2's threshold while held
#: the young generation's threshold in a server process of its own (CPython's: 700)
YOUNG_THRESHOLD = 20_000


def settle_collector(collector: Any = gc) -> None:
    """Once a server process of its own is up: what it made to start (modules, the app,
    its tables) is frozen out of every later collection, and young collections run after
    20,000 allocations instead of 700. A call's objects nearly all die by reference count,
    but at 700 a young collection found the calls in flight still alive, every time, and
    walked them again; at saturation the collector took 11-19% of a server's CPU
    (py-spy, bench/send_throughput.py; docs/architecture.md, "Where the time goes").
    No collection first: it took 90 ms, a pause for the devices already coming back, to
    free a few objects of the start, which freezing keeps instead."""
    collector.freeze()
    _, second, third = collector.get_threshold()
    collector.set_threshold(YOUNG_THRESHOLD, second, third)


class CollectionHold:
    def __init__(self, arrivals: Callable[[], int], storm_rate: float = 50.0,
                 quiet: float = 5.0, max_hold: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, collector: Any = gc) -> None:
        self.arrivals = arrivals  # sockets from known addresses so far (admitted or not)
        self.storm_rate = storm_rate
        self.quiet = quiet
        self.max_hold = max_hold
        self.clock = clock
        self.gc = collector
        self._last_count = arrivals()
        self._last_tick = clock()
        self._stormy_at = float("-inf")  # when arrivals were last over storm_rate
        self._held_since: float | None = None
        self._thresholds: tuple[int, int, int] | None = None
        self._no_hold_until = float("-inf")  # after a hold ran out: the collector's turn
        self.holds = 0

    @property
    def holding(self) -> bool:
        return self._held_since is not None

    def tick(self) -> None:
        now = self.clock()
        count = self.arrivals()
        elapsed = max(now - self._last_tick, 1e-3)
        if (count - self._last_count) / elapsed >= self.storm_rate:
            self._stormy_at = now
        self._last_count, self._last_tick = count, now
        if self._held_since is None:
            if self._stormy_at == now and now >= self._no_hold_until:
                self._hold(now)
        elif now - self._stormy_at >= self.quiet:
            self.release()
        elif now - self._held_since >= self.max_hold:
            # Long enough: let the collector catch up before holding it again.
            self.release()
            self._no_hold_until = now + 2 * self.quiet

    def _hold(self, now: float) -> None:
        first, second, third = self.gc.get_threshold()
        self._thresholds = (first, second, third)
        self.gc.set_threshold(first, second, OUT_OF_REACH)
        self._held_since = now
        self.holds += 1

    def release(self) -> None:
        """The thresholds as they were (at the end of a storm, and when the server stops)."""
        if self._thresholds is not None:
            self.gc.set_threshold(*self._thresholds)
        self._thresholds = self._held_since = None

    def stats(self) -> dict[str, Any]:
        return {"holding": self.holding, "holds": self.holds}
