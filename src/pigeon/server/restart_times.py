"""How long this server's restarts really take, so that a going-away notice announces that
and not a guess (issue 13).

A planned restart's downtime is the rest of the stop after the notice (sockets written, the
store closed, the process gone) plus the next start (interpreter, imports, the store opened,
the sessions loaded, listening). Each is measured by the process that does it and kept in
``DATA/restart-times.json``: the stop's part when it ends, the start's when it listens. The
next notice announces their sum with a margin; a device whose user is waiting comes back
then, and the server should be listening by that moment, not seconds later (a send made at
the stop must still be acknowledged within 5 s) nor seconds before (its sends waiting in
vain on a server that is already back).

The file is a hint: a missing or damaged one falls back to an estimate from the settings,
and a failed write is logged and forgotten. Workers of ``--workers`` write it each in turn
(an atomic rename, so a reader never sees half of it); the last to write wins.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pigeon.protocol import limits

log = logging.getLogger("pigeon.server")

FILE = "restart-times.json"
#: the notice's downtime is the measured one times this, plus MARGIN seconds. Small: a
#: device whose user waits comes back then and, finding nothing listening yet, tries again
#: every fifth of a second (a refused connect costs the server nothing), while every
#: second announced too long is a second of that user's sends waiting (client.py)
FACTOR, MARGIN = 1.0, 0.15
#: never announce less: a client's own reconnect (a TCP and WebSocket handshake, a hello)
#: takes about this on a busy machine anyway
FLOOR = 0.5
#: a measured part longer than this is not believed (a machine suspended mid-start)
BELIEVED = 60.0
#: without a measured stop: its bounded part (stop_close_seconds) plus this for the store
STORE_CLOSE_GUESS = 0.5
#: without a measured start
START_GUESS = 2.0


@dataclass(frozen=True)
class RestartTimes:
    """Seconds of the last stop after its notice, and of the last start (None: unknown)."""

    stop: float | None = None
    start: float | None = None

    def downtime(self, close_seconds: float) -> float:
        """What a notice should announce: the measured stop and start, with a margin."""
        stop = self.stop if self.stop is not None else close_seconds + STORE_CLOSE_GUESS
        start = self.start if self.start is not None else START_GUESS
        return round(min(limits.MAX_RETRY_SECONDS, max(FLOOR, (stop + start) * FACTOR + MARGIN)),
                     2)


def _believed(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and 0.0 <= value <= BELIEVED:
        return float(value)
    return None


def read(data: Path) -> RestartTimes:
    """The last measured times, or unknowns where the file has none (or is not ours)."""
    try:
        raw = json.loads((data / FILE).read_bytes()[:4096])
    except (OSError, ValueError):
        return RestartTimes()
    if not isinstance(raw, dict):
        return RestartTimes()
    return RestartTimes(stop=_believed(raw.get("stop_seconds")),
                        start=_believed(raw.get("start_seconds")))


def record(data: Path, *, stop: float | None = None, start: float | None = None) -> None:
    """Keep one measured part (the other stays as it was). Blocking, but a few hundred bytes
    once per start or stop: the stop's is written after the store is closed, when no call is
    served any more, and the start's before the first connection."""
    old = read(data)
    new = RestartTimes(stop=old.stop if stop is None else round(stop, 3),
                       start=old.start if start is None else round(start, 3))
    tmp = data / f".{FILE}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps({"stop_seconds": new.stop, "start_seconds": new.start}))
        os.replace(tmp, data / FILE)
    except OSError as exc:
        log.warning("cannot record the restart's times in %s: %s", data / FILE, exc.strerror)
        tmp.unlink(missing_ok=True)


def process_age() -> float | None:
    """Seconds since this process began, from /proc (so the interpreter's start and the
    imports count); None where that is not known."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME)
                   - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None
