"""The server's log lines are written by a thread of their own (server/logs.py): a stderr
that nobody reads (a full pipe) stalls that thread, never the caller, i.e. the event loop."""

from __future__ import annotations

import io
import logging
import threading

from pigeon.server.logs import OffLoopHandler


class StuckStream(io.StringIO):
    """A stream whose writes wait until the test lets them through, like a full pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()

    def write(self, text: str) -> int:
        self.open.wait()
        return super().write(text)


def logger_with(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"test-off-loop-{id(handler)}")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return log


def test_a_stuck_stream_does_not_stop_the_caller_and_what_overflows_is_counted() -> None:
    stream = StuckStream()
    handler = OffLoopHandler(stream, fmt="%(levelname)s %(message)s", max_queued=4)
    log = logger_with(handler)
    done = threading.Event()

    def caller() -> None:  # the event loop's part: it must get through every call
        for n in range(20):
            log.info("line %d", n)
        done.set()

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    assert done.wait(30), "logging waited for the stuck stream"
    # The writer holds one line, the queue four more: the rest were dropped and counted.
    assert 20 - 5 <= handler.dropped <= 20 - 4
    stream.open.set()
    handler.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "INFO line 0"
    assert len(lines) + handler.dropped == 20


def test_close_writes_what_is_queued_with_tracebacks() -> None:
    stream = StuckStream()
    stream.open.set()
    handler = OffLoopHandler(stream, fmt="%(name)s %(message)s")
    log = logger_with(handler)
    for n in range(100):
        log.warning("w%d %s", n, "arg")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    handler.flush()  # what `pigeon serve` does before its last line
    text = stream.getvalue()
    assert text.count(" arg\n") == 100 and handler.dropped == 0
    assert "failed\nTraceback" in text and "ValueError: boom" in text
    handler.close()


def test_a_closed_stream_counts_lines_and_keeps_the_writer_going() -> None:
    stream = io.StringIO()
    handler = OffLoopHandler(stream, fmt="%(message)s")
    log = logger_with(handler)
    stream.close()
    log.info("lost")
    handler.close()
    assert handler.dropped == 1
