"""Fan-out of updates to connected devices: in-process now, NATS across nodes later."""

from .local import LocalBus, Sink

__all__ = ["LocalBus", "Sink"]
