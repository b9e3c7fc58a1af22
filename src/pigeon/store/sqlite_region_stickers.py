"""Sticker sets from another region (SQLite operations, run by both engines;
docs/architecture.md, "Regions": sticker sets).

A set lives in its author's home region. Someone homed elsewhere who looks it up, views or
installs it gets a copy in their own region: the set's row under its name, its author's
remote row, and its stickers, whose images were fetched and stored before this transaction
(server/region_stickers.py). Every other operation then runs on the copy as on a set made
here (install, find by emoji, send, the images served by digest), so it stays usable while
the author's region is away. A copy is known as one by its author's id, which says its
region; it is refreshed from there when its region answers.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from pigeon.domain import stickers as rules
from pigeon.protocol.errors import Conflict
from pigeon.protocol.regions import CrossStickerSet

from .sqlite_regions import _tx_remember_remote
from .sqlite_stickers import _STICKER_COLS, _emoji_text

if TYPE_CHECKING:
    from .sqlite import SqlEngine


def _q_copies_bytes(conn: sqlite3.Connection, besides: str) -> int:
    """Bytes of the images of this region's copies of other regions' sets, but ``besides``
    (counted by sticker: an image two copies share counts twice, an overestimate)."""
    (total,) = conn.execute(
        "SELECT COALESCE(SUM(s.size), 0) FROM sticker_sets t "
        "JOIN users u ON u.id = t.author_id AND u.home_region IS NOT NULL "
        "JOIN stickers s ON s.set_id = t.id WHERE t.name != ?", (besides,)).fetchone()
    return int(total)


def _tx_keep_remote_set(conn: sqlite3.Connection, theirs: CrossStickerSet, region: str,
                        now: float, limit: int) -> None:
    """Make (or refresh) this region's copy of ``theirs``, published in ``region``; a set of
    the same name by someone else here is not overwritten: STICKER_SET_NAME_TAKEN; past
    ``limit`` bytes of copies' images: QUOTA_EXCEEDED."""
    rules.copy_fits(theirs.name, [s.size for s in theirs.stickers],
                    _q_copies_bytes(conn, theirs.name), limit)
    _tx_remember_remote(conn, theirs.author, region, now)
    row = conn.execute("SELECT id, author_id FROM sticker_sets WHERE name = ?",
                       (theirs.name,)).fetchone()
    if row is None:
        (set_id,) = conn.execute(
            "INSERT INTO sticker_sets (name, title, author_id, licence, published, created) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (theirs.name, theirs.title, theirs.author.id, theirs.licence, now, now)).fetchone()
    elif row[1] != theirs.author.id:
        raise Conflict(f"the sticker set name {theirs.name!r} is taken here",
                       code="STICKER_SET_NAME_TAKEN")
    else:
        set_id = row[0]
        conn.execute("UPDATE sticker_sets SET title = ?, licence = ? WHERE id = ?",
                     (theirs.title, theirs.licence, set_id))
    # its region's word on the stickers (at most 120 rows; a published set only grows, so
    # every sticker keeps its number, and SET:N names the same sticker here as there)
    conn.execute("DELETE FROM stickers WHERE set_id = ?", (set_id,))
    conn.executemany(
        f"INSERT INTO stickers (set_id, {_STICKER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(set_id, place, _emoji_text(s.emoji), s.file_id, s.width, s.height, int(s.animated),
          s.size) for place, s in enumerate(theirs.stickers, start=1)])


class SqliteRegionStickers:
    """The sticker part of :class:`.region_api.RegionApi` on the shared SQL (both engines)."""

    engine: SqlEngine

    async def keep_remote_sticker_set(self, theirs: CrossStickerSet, region: str,
                                      now: float, limit: int = 1 << 50) -> None:
        await self.engine.write(_tx_keep_remote_set, theirs, region, now, limit)

    async def remote_sticker_bytes(self, besides: str) -> int:
        return await self.engine.read(_q_copies_bytes, besides)
