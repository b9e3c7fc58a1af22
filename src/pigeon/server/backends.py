"""The one place that picks the implementations behind the server's interfaces.

Everything else in the server knows only :class:`~pigeon.store.Store`,
:class:`~pigeon.bus.Bus` and :class:`~pigeon.shield.state.ShieldState`
(tests/unit/test_seams.py holds it to that). The embedded defaults: SQLite in the data
directory, the in-process bus, the shield's state in memory. ``--store postgresql://...``
picks PostgreSQL; with ``bus = nats://...`` the bus and the shield's state are shared over
NATS (issue 12).
"""

from __future__ import annotations

from pigeon.bus import Bus, LocalBus
from pigeon.shield.state import MemoryShieldState, ShieldState
from pigeon.store import Store

from .services import load_or_create_secret
from .settings import Settings


def make_store(settings: Settings) -> Store:
    store = _store(settings)
    # before any call is served: an edit made before the link to the other regions is up
    # must still be queued for them
    store.crosses_regions = settings.region_table() is not None
    store.region = settings.region if store.crosses_regions else ""
    return store


def _store(settings: Settings) -> Store:
    # Imported here, so that a server never loads a backend it does not use.
    if settings.store:
        from pigeon.store.postgres import PostgresStore

        writers = settings.store_writers_here
        return PostgresStore(settings.store, writers=writers,
                             readers=settings.store_pool - writers)
    from pigeon.store.sqlite import SqliteStore

    return SqliteStore(settings.db_path)


def make_bus(settings: Settings) -> Bus:
    if settings.bus == "local":
        return LocalBus()
    from pigeon.bus.nats import NatsBus

    return NatsBus(settings.bus, settings.region_prefix)


def make_shield_state(settings: Settings) -> ShieldState:
    """In memory; its secret kept in the data directory, so that it survives a restart (a
    shared state keeps one secret for every worker instead)."""
    secret = load_or_create_secret(settings.data)
    if settings.bus != "local":
        from pigeon.shield.shared import NatsShieldState

        return NatsShieldState(settings.bus, settings.region_prefix, secret,
                               max_known=settings.max_known_addresses)
    return MemoryShieldState(secret, max_known=settings.max_known_addresses)
