"""A crowd in a store: one chat of many members, built through the Store interface, and the
rows a write costs (SQLite). For tests and benchmarks (``bench/chat_write_cost.py``); never
imported by the server.

A regular group holds at most the server's ``max_group_members`` (1,000 by default); the
store takes any limit it is given, so a crowd of 10,000 in a regular group is what a
message cost before large chats existed: one update row per member.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from typing import NamedTuple, TypeVar

from pigeon.store import SqliteStore, Store

T = TypeVar("T")
NOW = 1_700_000_000.0


class Crowd(NamedTuple):
    owner: int
    chat_id: int
    members: list[int]


async def crowd(store: Store, size: int, *, large: bool, phone_base: int = 0) -> Crowd:
    """A group of ``size`` members (the owner one of them); ``large``: a supergroup."""
    users = await asyncio.gather(*(store.create_user(f"+1555{phone_base + i:07d}", f"u{i}", NOW)
                                   for i in range(size)))
    owner, *others = [u.id for u in users]
    chat, _ = await store.create_group(owner, "crowd", others, NOW, max_members=size,
                                       large=large)
    return Crowd(owner, chat.id, others)


def _total_changes(conn: sqlite3.Connection) -> int:
    return conn.total_changes


async def rows_written(store: SqliteStore, write: Awaitable[T]) -> tuple[T, int]:
    """``write``'s result, and how many rows it inserted, updated or deleted: SQLite's
    count on the one writer connection, read before and after (nothing else may write
    meanwhile)."""
    before = await store.engine.write(_total_changes)
    result = await write
    after = await store.engine.write(_total_changes)
    return result, after - before
