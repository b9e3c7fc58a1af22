"""Media (SQLite backend): uploads, files, and which messages refer to which file.

The rules (limits, who may read, what is garbage) are :mod:`pigeon.domain.media`'s; these
functions read the rows they take and write what they decided.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from pigeon.domain import media as rules
from pigeon.protocol.media import Media

from .base import FileRecord, UploadRecord
from .sqlite_rows import chunks, marks

UPLOAD_COLS = "id, user_id, size, name, part_size, kind, keep_location, created, file_id"
FILE_COLS = ("id, owner_id, digest, size, name, mime, kind, created, width, height, thumb, "
             "parent")
MAX_SIGHTINGS = 1000  # messages carrying one file, in chats of one reader, looked at


def _upload(row: Any) -> UploadRecord:
    return UploadRecord(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7],
                        row[8])


def _file(row: Any) -> FileRecord:
    return FileRecord(*row)


# -- references, written with the messages ---------------------------------------------------
def refer(conn: sqlite3.Connection, media: Media, chat_id: int, message_id: int) -> None:
    """A message refers to ``media``'s file (its thumbnail follows the photo). Checked again
    here, in the send's own transaction: the collector may have removed the file since the
    sender was found allowed to read it."""
    if conn.execute("SELECT 1 FROM media_files WHERE id = ?",
                    (media.file_id,)).fetchone() is None:
        raise rules.no_file(media.file_id)
    conn.execute("INSERT OR IGNORE INTO media_refs (file_id, chat_id, message_id) "
                 "VALUES (?, ?, ?)", (media.file_id, chat_id, message_id))


def unrefer(conn: sqlite3.Connection, chat_id: int, message_ids: list[int]) -> None:
    for chunk in chunks(message_ids):
        conn.execute(f"DELETE FROM media_refs WHERE chat_id = ? AND message_id IN "
                     f"({marks(chunk)})", (chat_id, *chunk))


# -- uploads ----------------------------------------------------------------------------------
def _usage(conn: sqlite3.Connection, user_id: int) -> rules.Usage:
    (stored,) = conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM media_files WHERE owner_id = ? AND parent IS NULL",
        (user_id,)).fetchone()
    count, pending = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM media_uploads "
        "WHERE user_id = ? AND file_id IS NULL", (user_id,)).fetchone()
    return rules.Usage(stored, count, pending)


def _tx_create_upload(conn: sqlite3.Connection, upload: UploadRecord,
                      limits: rules.UploadLimits) -> None:
    rules.check_new_upload(upload.size, upload.part_size, _usage(conn, upload.user_id), limits)
    conn.execute(f"INSERT INTO media_uploads ({UPLOAD_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (upload.id, upload.user_id, upload.size, upload.name, upload.part_size,
                  upload.kind, int(upload.keep_location), upload.created, None))


def _q_upload(conn: sqlite3.Connection, upload_id: str, user_id: int) -> UploadRecord:
    row = conn.execute(f"SELECT {UPLOAD_COLS} FROM media_uploads WHERE id = ? AND user_id = ?",
                       (upload_id, user_id)).fetchone()
    if row is None:
        raise rules.no_upload(upload_id)
    return _upload(row)


def _tx_finish_upload(conn: sqlite3.Connection, upload_id: str, files: list[FileRecord],
                      readers: list[int]) -> None:
    for f in files:
        conn.execute(f"INSERT OR IGNORE INTO media_files ({FILE_COLS}) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", msgspec.structs.astuple(f))
    for reader in rules.readers(files[0].owner_id, readers):
        conn.execute("INSERT OR IGNORE INTO media_readers (file_id, user_id) VALUES (?, ?)",
                     (files[0].id, reader))
    conn.execute("UPDATE media_uploads SET file_id = ? WHERE id = ?", (files[0].id, upload_id))


def _tx_delete_uploads(conn: sqlite3.Connection, upload_ids: list[str]) -> None:
    conn.executemany("DELETE FROM media_uploads WHERE id = ?", [(i,) for i in upload_ids])


def _q_expired_uploads(conn: sqlite3.Connection, before: float,
                       limit: int) -> list[UploadRecord]:
    return [_upload(r) for r in conn.execute(
        f"SELECT {UPLOAD_COLS} FROM media_uploads WHERE created < ? ORDER BY created LIMIT ?",
        (before, limit))]


# -- files ------------------------------------------------------------------------------------
def _q_readable_file(conn: sqlite3.Connection, user_id: int, file_id: str) -> FileRecord:
    row = conn.execute(f"SELECT {FILE_COLS} FROM media_files WHERE id = ?",
                       (file_id,)).fetchone()
    if row is None:
        raise rules.no_file(file_id)
    found = _file(row)
    # A thumbnail is read on its photo's terms; the photo carries the references.
    governing = found.parent or found.id
    owner = found.owner_id
    sightings = [rules.Sighting(r[0], bool(r[1]), r[2]) for r in conn.execute(
        "SELECT r.message_id, m.deleted, mb.history_from FROM media_refs r "
        "JOIN members mb ON mb.chat_id = r.chat_id AND mb.user_id = ? "
        "JOIN messages m ON m.chat_id = r.chat_id AND m.id = r.message_id "
        "WHERE r.file_id = ? LIMIT ?", (user_id, governing, MAX_SIGHTINGS))]
    named = conn.execute("SELECT 1 FROM media_readers WHERE file_id = ? AND user_id = ?",
                         (governing, user_id)).fetchone() is not None
    if not rules.may_read(owner, user_id, sightings, named):
        raise rules.no_file(file_id)
    return found


def _tx_collect_files(conn: sqlite3.Connection, before: float,
                      limit: int) -> tuple[int, list[str]]:
    # Unreferenced first (the index on created bounds the scan); referenced files are kept.
    # (NOT EXISTS in WHERE, not an alias of the select list: PostgreSQL allows no alias there)
    rows = conn.execute(
        "SELECT f.id, f.digest, f.created FROM media_files f "
        "WHERE f.parent IS NULL AND f.created < ? AND NOT EXISTS (SELECT 1 FROM media_refs r "
        "WHERE r.file_id = f.id) AND NOT EXISTS (SELECT 1 FROM media_readers g "
        "WHERE g.file_id = f.id) ORDER BY f.created LIMIT ?", (before, limit)).fetchall()
    gone = [(r[0], r[1]) for r in rows if rules.collectable(False, r[2], before, 0.0)]
    digests: set[str] = set()
    for file_id, digest in gone:
        digests.add(digest)
        for (thumb_digest,) in conn.execute(
                "DELETE FROM media_files WHERE parent = ? RETURNING digest", (file_id,)):
            digests.add(thumb_digest)
        conn.execute("DELETE FROM media_files WHERE id = ?", (file_id,))
    return len(rows), sorted(d for d in digests if rules.blob_unused(*_blob_users(conn, d)))


def _blob_users(conn: sqlite3.Connection, digest: str) -> tuple[int, int]:
    """(files, stickers) that use the blob ``digest``: a sticker's file_id is its digest."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM media_files WHERE digest = ?), "
        "EXISTS (SELECT 1 FROM stickers WHERE file_id = ?) OR "
        "EXISTS (SELECT 1 FROM region_sticker_files WHERE file_id = ?)",
        (digest, digest, digest)).fetchone()
    return int(row[0]), int(row[1])


def _tx_delete_user_media(conn: sqlite3.Connection, user_id: int,
                          limit: int) -> tuple[list[str], list[str], int]:
    """An account deleted: its uploads in progress and up to ``limit`` of its files (with
    their thumbnails and the references to them) go. Returns the upload ids (their parts go
    from disk), the digests no file or sticker uses any more, and how many files went
    (``limit``: call again)."""
    uploads = [r[0] for r in conn.execute(
        "DELETE FROM media_uploads WHERE user_id = ? RETURNING id", (user_id,))]
    # what others named it a reader of: kept for it no longer (the collector may take them)
    conn.execute("DELETE FROM media_readers WHERE user_id = ?", (user_id,))
    rows = conn.execute("SELECT id, digest FROM media_files WHERE owner_id = ? LIMIT ?",
                        (user_id, limit)).fetchall()
    digests = {digest for _, digest in rows}
    for file_id, _ in rows:
        for (thumb_digest,) in conn.execute(
                "DELETE FROM media_files WHERE parent = ? RETURNING digest", (file_id,)):
            digests.add(thumb_digest)
        conn.execute("DELETE FROM media_refs WHERE file_id = ?", (file_id,))
        conn.execute("DELETE FROM media_readers WHERE file_id = ?", (file_id,))
        conn.execute("DELETE FROM media_files WHERE id = ?", (file_id,))
    return uploads, sorted(d for d in digests if rules.blob_unused(*_blob_users(conn, d))), \
        len(rows)
