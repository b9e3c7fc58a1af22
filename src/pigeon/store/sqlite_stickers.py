"""SQL of sticker sets (SQLite backend; issue 10).

Tables (migration 10): ``sticker_sets``, ``stickers`` (one row per sticker, by its place in
the set, from 1) and ``installed_stickers``. The rules are :mod:`pigeon.domain.stickers`;
each transaction reads the set's row, asks the rule, then writes, so check and write are one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pigeon.domain import stickers as rules
from pigeon.protocol import updates as up
from pigeon.protocol.stickers import (
    FoundSticker,
    Installed,
    Sticker,
    StickerSet,
    StickerSetInfo,
)

from .base import NewSticker, Push
from .sqlite_log import bump, log_updates
from .sqlite_rows import STORED, encode

_SEP = "\x1f"  # between emoji in ``stickers.emoji``: an exact match is one instr()
_INFO = ("s.name, s.title, s.author_id, COALESCE(u.name, ''), "
         "(SELECT COUNT(*) FROM stickers k WHERE k.set_id = s.id), s.published IS NOT NULL, "
         "s.licence, COALESCE((SELECT file_id FROM stickers k WHERE k.set_id = s.id "
         "AND k.position = 1), '')")
_STICKER_COLS = "position, emoji, file_id, width, height, animated, size"


def _emoji_text(emoji: list[str]) -> str:
    return _SEP + _SEP.join(emoji) + _SEP


def _sticker(row: Any) -> Sticker:
    return Sticker(index=row[0], emoji=[e for e in row[1].split(_SEP) if e], file_id=row[2],
                   width=row[3], height=row[4], animated=bool(row[5]), size=row[6])


def _set_row(conn: sqlite3.Connection, name: str) -> rules.SetRow | None:
    row = conn.execute(
        "SELECT id, author_id, published IS NOT NULL, "
        "(SELECT COUNT(*) FROM stickers WHERE set_id = sticker_sets.id) "
        "FROM sticker_sets WHERE name = ?", (name,)).fetchone()
    return None if row is None else rules.SetRow(row[0], row[1], bool(row[2]), row[3])


def _whole(conn: sqlite3.Connection, set_id: int, viewer_id: int | None) -> StickerSet:
    row = conn.execute(
        f"SELECT {_INFO}, EXISTS (SELECT 1 FROM installed_stickers i WHERE i.set_id = s.id "
        "AND i.user_id = ?) FROM sticker_sets s LEFT JOIN users u ON u.id = s.author_id "
        "WHERE s.id = ?", (viewer_id or 0, set_id)).fetchone()
    stickers = [_sticker(r) for r in conn.execute(
        f"SELECT {_STICKER_COLS} FROM stickers WHERE set_id = ? ORDER BY position", (set_id,))]
    return StickerSet(info=_info(row), stickers=stickers)


def _info(row: Any) -> StickerSetInfo:
    return StickerSetInfo(name=row[0], title=row[1], author_id=row[2], author_name=row[3],
                          count=row[4], published=bool(row[5]), licence=row[6], cover=row[7],
                          installed=bool(row[8]))


def _tx_create_set(conn: sqlite3.Connection, author_id: int, name: str, title: str,
                   licence: str, now: float) -> StickerSet:
    taken = conn.execute("SELECT 1 FROM sticker_sets WHERE name = ?", (name,)).fetchone()
    (authored,) = conn.execute("SELECT COUNT(*) FROM sticker_sets WHERE author_id = ?",
                               (author_id,)).fetchone()
    rules.check_new_set(taken is not None, name, authored)
    (set_id,) = conn.execute(
        "INSERT INTO sticker_sets (name, title, author_id, licence, created) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id", (name, title, author_id, licence, now)).fetchone()
    return _whole(conn, set_id, author_id)


def _tx_add(conn: sqlite3.Connection, author_id: int, name: str,
            sticker: NewSticker) -> StickerSet:
    row = rules.owned_set(_set_row(conn, name), name, author_id)
    rules.check_room(row)
    conn.execute(
        f"INSERT INTO stickers (set_id, {_STICKER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.id, row.size + 1, _emoji_text(sticker.emoji), sticker.file_id, sticker.width,
         sticker.height, int(sticker.animated), sticker.size))
    return _whole(conn, row.id, author_id)


def _rewrite(conn: sqlite3.Connection, set_id: int, rows: list[Any]) -> None:
    """The set's stickers renumbered 1..n in the order of ``rows`` (at most 120 rows)."""
    conn.execute("DELETE FROM stickers WHERE set_id = ?", (set_id,))
    conn.executemany(
        f"INSERT INTO stickers (set_id, {_STICKER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(set_id, place, *r[1:]) for place, r in enumerate(rows, start=1)])


def _ordered(conn: sqlite3.Connection, set_id: int) -> list[Any]:
    return conn.execute(f"SELECT {_STICKER_COLS} FROM stickers WHERE set_id = ? "
                        "ORDER BY position", (set_id,)).fetchall()


def _tx_remove(conn: sqlite3.Connection, author_id: int, name: str, index: int) -> StickerSet:
    row = rules.owned_set(_set_row(conn, name), name, author_id)
    rules.check_unpublished(row, "removed")
    rules.check_position(row, index)
    rows = _ordered(conn, row.id)
    del rows[index - 1]
    _rewrite(conn, row.id, rows)
    return _whole(conn, row.id, author_id)


def _tx_move(conn: sqlite3.Connection, author_id: int, name: str, index: int,
             to: int) -> StickerSet:
    row = rules.owned_set(_set_row(conn, name), name, author_id)
    rules.check_unpublished(row, "moved")
    rules.check_position(row, index)
    rules.check_position(row, to)
    _rewrite(conn, row.id, rules.moved(_ordered(conn, row.id), index, to))
    return _whole(conn, row.id, author_id)


def _tx_publish(conn: sqlite3.Connection, author_id: int, name: str, now: float) -> StickerSet:
    row = rules.owned_set(_set_row(conn, name), name, author_id)
    rules.check_publishable(row)
    conn.execute("UPDATE sticker_sets SET published = COALESCE(published, ?) WHERE id = ?",
                 (now, row.id))
    return _whole(conn, row.id, author_id)


def _q_search(conn: sqlite3.Connection, viewer_id: int, query: str,
              limit: int) -> list[StickerSetInfo]:
    # instr on lower(): no LIKE wildcards to escape in what people type
    needle = query.lower()
    rows = conn.execute(
        f"SELECT {_INFO}, EXISTS (SELECT 1 FROM installed_stickers i WHERE i.set_id = s.id "
        "AND i.user_id = ?) FROM sticker_sets s LEFT JOIN users u ON u.id = s.author_id "
        "WHERE s.published IS NOT NULL AND (instr(s.name, ?) > 0 OR instr(lower(s.title), ?) > 0) "
        "ORDER BY s.published DESC, s.id DESC LIMIT ?",
        (viewer_id, needle, needle, limit))
    return [_info(r) for r in rows]


def _q_get_set(conn: sqlite3.Connection, viewer_id: int | None, name: str) -> StickerSet:
    row = rules.seen_set(_set_row(conn, name), name, viewer_id)
    return _whole(conn, row.id, viewer_id)


def _installed(conn: sqlite3.Connection, user_id: int) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT s.name FROM installed_stickers i JOIN sticker_sets s ON s.id = i.set_id "
        "WHERE i.user_id = ? ORDER BY i.installed, s.id", (user_id,))]


def _tx_install(conn: sqlite3.Connection, user_id: int, name: str, install: bool,
                now: float) -> tuple[Installed, list[Push]]:
    found = _set_row(conn, name)
    if found is None and not install:  # uninstalling what is not there changes nothing
        return Installed(names=_installed(conn, user_id)), []
    # Publishing cannot be undone, so a set one installed stays one they may see.
    row = rules.seen_set(found, name, user_id)
    held = conn.execute("SELECT 1 FROM installed_stickers WHERE user_id = ? AND set_id = ?",
                        (user_id, row.id)).fetchone() is not None
    if held == install:
        return Installed(names=_installed(conn, user_id)), []
    if install:
        (count,) = conn.execute("SELECT COUNT(*) FROM installed_stickers WHERE user_id = ?",
                                (user_id,)).fetchone()
        rules.check_install_room(count)
        conn.execute("INSERT INTO installed_stickers (user_id, set_id, installed) "
                     "VALUES (?, ?, ?)", (user_id, row.id, now))
    else:
        conn.execute("DELETE FROM installed_stickers WHERE user_id = ? AND set_id = ?",
                     (user_id, row.id))
    names = _installed(conn, user_id)
    update = up.StickersInstalled(pts=0, names=names)
    targets = bump(conn, [user_id])
    log_updates(conn, targets, STORED, 0, 0, encode(update))
    return Installed(names=names, pts=targets[0][1]), [Push(update, targets)]


def _q_installed(conn: sqlite3.Connection, user_id: int) -> Installed:
    (pts,) = conn.execute("SELECT pts FROM users WHERE id = ?", (user_id,)).fetchone() or (0,)
    return Installed(names=_installed(conn, user_id), pts=pts)


def _q_find(conn: sqlite3.Connection, user_id: int, emoji: str,
            limit: int) -> list[FoundSticker]:
    rows = conn.execute(
        f"SELECT s.name, {', '.join('k.' + c for c in _STICKER_COLS.split(', '))} "
        "FROM installed_stickers i JOIN sticker_sets s ON s.id = i.set_id "
        "JOIN stickers k ON k.set_id = s.id WHERE i.user_id = ? AND instr(k.emoji, ?) > 0 "
        "ORDER BY i.installed DESC, s.id DESC, k.position LIMIT ?",
        (user_id, _SEP + emoji + _SEP, limit))
    return [FoundSticker(set=r[0], sticker=_sticker(r[1:])) for r in rows]


def _q_file_public(conn: sqlite3.Connection, file_id: str) -> bool:
    # or one that came with a sticker message from another region (sqlite_regions)
    (found,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM stickers WHERE file_id = ?) OR EXISTS "
        "(SELECT 1 FROM region_sticker_files WHERE file_id = ?)", (file_id, file_id)).fetchone()
    return bool(found)
