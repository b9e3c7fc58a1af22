"""The server's log lines, written by a thread of their own, never by the event loop.

A write to stderr blocks when stderr is a pipe that nobody reads any more (a supervisor or a
test harness that stopped reading, a full terminal buffer): written from the loop, one such
write stalls every connection, and the SIGTERM handler that runs on that loop with them.
Here the loop only formats a record and puts it in a bounded queue; a writer thread takes it
from there. When the queue is full the record is dropped and counted (``dropped``), never
waited for.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from logging.handlers import QueueHandler
from typing import TextIO

#: records waiting for the writer, at most; past it they are dropped
MAX_QUEUED = 10_000
#: how long closing waits for the writer to write what is queued (a blocked stream: not more)
CLOSE_WAIT = 2.0


class OffLoopHandler(QueueHandler):
    """Formats on the caller's thread, writes on its own (``stream``: stderr by default)."""

    def __init__(self, stream: TextIO | None = None, fmt: str | None = None,
                 max_queued: int = MAX_QUEUED) -> None:
        self._records: queue.Queue[logging.LogRecord | None] = queue.Queue(max_queued)
        super().__init__(self._records)
        self.dropped = 0  # queue full, or the stream refused the line (a closed pipe)
        self._stream = stream or sys.stderr
        self.setFormatter(logging.Formatter(fmt))  # QueueHandler.prepare: the whole line
        self._thread: threading.Thread | None = threading.Thread(
            target=self._write_all, name="pigeon-log-writer", daemon=True)
        self._thread.start()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self._records.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _write_all(self) -> None:
        while (record := self._records.get()) is not None:
            try:
                self._stream.write(record.getMessage() + "\n")
                self._stream.flush()
            except (OSError, ValueError):  # a pipe closed by its reader, a closed file
                self.dropped += 1
            finally:
                self._records.task_done()

    def flush(self) -> None:
        """Until what is queued is written (for at most ``CLOSE_WAIT`` seconds): lines
        printed after this come after them."""
        done = self._records.all_tasks_done
        with done:
            done.wait_for(lambda: self._records.unfinished_tasks == 0, CLOSE_WAIT)

    def close(self) -> None:
        """Write what is queued (for at most ``CLOSE_WAIT`` seconds), then stop the writer."""
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                self._records.put(None, timeout=CLOSE_WAIT)
            except queue.Full:
                pass
            thread.join(CLOSE_WAIT)
        super().close()


def configure(level: str, fmt: str) -> OffLoopHandler:
    """The root logger at ``level``, its lines in ``fmt``, written off the event loop (in place
    of ``logging.basicConfig``). ``logging.shutdown()`` writes what is still queued."""
    handler = OffLoopHandler(fmt=fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler
