"""Fan-out of updates to connected devices: in-process now, NATS across workers later."""

from .base import Bus, Sink
from .local import LocalBus

__all__ = ["Bus", "LocalBus", "Sink"]
