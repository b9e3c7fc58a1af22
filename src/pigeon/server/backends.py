"""The one place that picks the implementations behind the server's interfaces.

Everything else in the server knows only :class:`~pigeon.store.Store` and
:class:`~pigeon.bus.Bus` (tests/unit/test_seams.py holds it to that). Today there is one of
each: SQLite in the data directory and the in-process bus. Issue 12 adds PostgreSQL and NATS
here, chosen by settings; nothing else changes.
"""

from __future__ import annotations

from pigeon.bus import Bus, LocalBus
from pigeon.store import Store

from .settings import Settings


def make_store(settings: Settings) -> Store:
    # Imported here, so that a server started on another backend never loads SQLite's.
    from pigeon.store.sqlite import SqliteStore

    return SqliteStore(settings.db_path)


def make_bus(settings: Settings) -> Bus:
    return LocalBus()
