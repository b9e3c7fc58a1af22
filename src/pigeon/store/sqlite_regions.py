"""Regions (SQLite operations, run by both engines): people homed in another region, and the
transactional outbox of private messages to them (docs/architecture.md, "Regions").

A private message to someone homed elsewhere is committed here as any other (the sender's
side, the sender's pts) and, in the same transaction, queued in ``region_outbox``; a relay
(server/regions.py) publishes the queue to JetStream and deletes what JetStream acknowledged.
The recipient's region applies it with :func:`_tx_apply_cross`, idempotently: its identity is
(sender, random_id), the key the ``random_ids`` table already deduplicates sends by. Edits,
deletes for everyone and read marks in such a chat are queued and applied the same way
(:mod:`.sqlite_region_events`), in the same stream, so in the order they happened.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from pigeon.domain.regions import cross_order
from pigeon.protocol.regions import (
    Cross,
    CrossEnvelope,
    CrossFile,
    CrossMessage,
    GroupCross,
    RemoteUser,
)
from pigeon.protocol.media import Media
from pigeon.protocol.types import FwdFrom, Message, MessageSticker
from pigeon.protocol.errors import InvalidArgument, NotFound

from .base import Push
from .region_api import MAX_OUTBOX_BATCH
from pigeon.protocol.limits import MAX_IDS_PER_CALL
from .sqlite_rows import chunks, marks

if TYPE_CHECKING:
    from .sqlite import SqlEngine

#: the phone column of a remote row: never an E.164 number, so no login or lookup finds it
REMOTE_PHONE = "remote:"


class Queued(NamedTuple):
    """One outbox row, with what the recipient's region keeps of its sender."""

    id: int
    sender: RemoteUser
    recipient_id: int
    random_id: int
    text: str
    date: float
    kind: str = "message"
    body: bytes | None = None  # the fields of its kind beyond the columns (msgpack)

    def fields(self) -> dict[str, Any]:
        """What :func:`pigeon.protocol.regions.cross_of` makes the wire struct of (its
        ``origin`` aside)."""
        extra = msgspec.msgpack.decode(self.body) if self.body else {}
        if not isinstance(extra, dict):
            extra = {}
        return {"sender": self.sender, "recipient_id": self.recipient_id,
                "random_id": self.random_id, "text": self.text, "date": self.date, **extra}


class Sides(NamedTuple):
    """Who of a private chat lives in another region (None: nobody; the usual case)."""

    remote_id: int
    remote_region: str
    local_id: int


def private_sides(sender_id: int, sender_region: str | None, peer_id: int | None,
                  peer_region: str | None) -> Sides | None:
    """The side of a private chat homed elsewhere (the sender, when the message comes from
    another region; the peer, when it goes there), and the side homed here; from the
    send's first read (a home region is NULL for people homed here)."""
    if peer_id is None or (sender_region is None) == (peer_region is None):
        return None
    if peer_region is not None:
        return Sides(peer_id, peer_region, sender_id)
    assert sender_region is not None
    return Sides(sender_id, sender_region, peer_id)


def check_crossable(encrypted: bool) -> None:
    """Text, files and stickers (a forward's too) cross regions; end-to-end ciphertext not
    (docs/architecture.md, "Regions": a private chat across regions is not a secret one)."""
    if encrypted:
        raise InvalidArgument("end-to-end ciphertext does not reach people homed in another "
                              "region", code="NOT_SUPPORTED_ACROSS_REGIONS")


def cross_sides(conn: sqlite3.Connection, chat_id: int, actor_id: int) -> Sides | None:
    """:func:`private_sides` of a private chat, read for an edit, a delete or a read mark
    (a send reads them in its first statement)."""
    row = conn.execute(
        "SELECT (SELECT home_region FROM users WHERE id = ?), p.user_id, u.home_region "
        "FROM members p JOIN users u ON u.id = p.user_id WHERE p.chat_id = ? AND p.user_id != ?",
        (actor_id, chat_id, actor_id)).fetchone()
    return None if row is None else private_sides(actor_id, row[0], row[1], row[2])


def queue(conn: sqlite3.Connection, sides: Sides, kind: str, actor_id: int, random_id: int,
          text: str, date: float, body: dict[str, Any] | None = None) -> None:
    """What ``actor_id`` did here to the side homed elsewhere: into the outbox, in this
    transaction. Only what someone homed here did: what came from there is not sent back."""
    if actor_id == sides.local_id:
        enqueue(conn, sides.remote_region, kind, actor_id, sides.remote_id, random_id, text,
                date, body)


def enqueue(conn: sqlite3.Connection, region: str, kind: str, actor_id: int, recipient_id: int,
            random_id: int, text: str, date: float, body: dict[str, Any] | None = None) -> None:
    """One row of the outbox to ``region`` (the relay publishes it after the commit)."""
    conn.execute(
        "INSERT INTO region_outbox (region, sender_id, recipient_id, random_id, text, date, "
        "kind, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (region, actor_id, recipient_id, random_id, text, date, kind,
         msgspec.msgpack.encode(body) if body else None))


def queue_remote(conn: sqlite3.Connection, sides: Sides, sender_id: int, random_id: int,
                 text: str, date: float, chat_id: int, message_id: int,
                 fwd_from: FwdFrom | None = None, reply_to: int | None = None,
                 media: Media | None = None, sticker: MessageSticker | None = None) -> None:
    """A message between the two sides: its author and random_id noted by its id in this
    copy (both ways: an edit, delete or read mark names it by them), and, from here, into
    the outbox (the message it replies to named the same way)."""
    conn.execute("INSERT INTO crossed_messages (chat_id, message_id, sender_id, random_id) "
                 "VALUES (?, ?, ?, ?)", (chat_id, message_id, sender_id, random_id))
    if sender_id != sides.local_id:
        return
    body = message_body(conn, chat_id, fwd_from, reply_to, media, sticker)
    queue(conn, sides, "message", sender_id, random_id, text, date, body)


def message_body(conn: sqlite3.Connection, chat_id: int, fwd_from: FwdFrom | None,
                 reply_to: int | None, media: Media | None,
                 sticker: MessageSticker | None) -> dict[str, Any]:
    """A message's fields beyond the outbox's columns: a forward's header, the message it
    replies to (by author and random_id), its files as stored here (the other region fetches
    their bytes) and its sticker."""
    body: dict[str, Any] = {}
    if fwd_from is not None:
        body["fwd_from"] = msgspec.to_builtins(fwd_from)
    if reply_to is not None:
        ref = conn.execute("SELECT sender_id, random_id FROM crossed_messages "
                           "WHERE chat_id = ? AND message_id = ?", (chat_id, reply_to)).fetchone()
        if ref is not None:
            body["reply_to"] = [ref[0], ref[1]]
    if media is not None:
        # the file and its thumbnail as stored here: the other region fetches their bytes
        body["media"] = msgspec.to_builtins(media)
        body["files"] = file_rows(conn, media)
    if sticker is not None:
        body["sticker"] = msgspec.to_builtins(sticker)
        body["sticker_size"] = sticker_size(conn, sticker.file_id)
    return body


def file_rows(conn: sqlite3.Connection, media: Media) -> list[dict[str, Any]]:
    """A file and its thumbnail as stored here (as :class:`CrossFile` fields)."""
    return [{"id": r[0], "digest": r[1], "size": r[2], "name": r[3], "mime": r[4],
             "kind": r[5], "width": r[6], "height": r[7], "thumb": r[8], "parent": r[9]}
            for r in conn.execute(
                "SELECT id, digest, size, name, mime, kind, width, height, thumb, parent "
                "FROM media_files WHERE id IN (?, ?) ORDER BY parent IS NULL",
                (media.file_id, media.thumb or media.file_id))]


def sticker_size(conn: sqlite3.Connection, file_id: str) -> int:
    """The size of a sticker's image (0: not known here)."""
    row = conn.execute("SELECT size FROM stickers WHERE file_id = ? LIMIT 1",
                       (file_id,)).fetchone()
    return int(row[0]) if row is not None else 0


def replied_to(conn: sqlite3.Connection, message: CrossMessage) -> int | None:
    """This copy's id of the message ``message`` replies to, in the same chat of the two;
    None if it is not here (never delivered, not in that chat, or deleted here meanwhile: the
    reply itself still comes, as a reply to nothing)."""
    if message.reply_to is None:
        return None
    row = conn.execute("SELECT r.chat_id, r.message_id FROM random_ids r "
                       "JOIN messages m ON m.chat_id = r.chat_id AND m.id = r.message_id "
                       "AND m.deleted = 0 "
                       "JOIN members a ON a.chat_id = r.chat_id AND a.user_id = ? "
                       "JOIN members b ON b.chat_id = r.chat_id AND b.user_id = ? "
                       "JOIN chats c ON c.id = r.chat_id AND c.kind = 'private' "
                       "WHERE r.sender_id = ? AND r.random_id = ?",
                       (message.sender.id, message.recipient_id, message.reply_to.sender_id,
                        message.reply_to.random_id)).fetchone()
    return None if row is None else int(row[1])


def _tx_remember_remote(conn: sqlite3.Connection, user: RemoteUser, region: str,
                        now: float) -> None:
    """Keep (or refresh) the local row of an account homed in ``region``."""
    row = conn.execute("SELECT home_region FROM users WHERE id = ?", (user.id,)).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO users (id, phone, name, username, created, home_region) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user.id, f"{REMOTE_PHONE}{user.id}", user.name, user.username, now, region))
    elif row[0] is None:
        # An id of ours said to be homed elsewhere: a misconfigured region table, not a row
        # to overwrite.
        raise InvalidArgument(f"user {user.id} is homed here, not in {region}")
    else:
        conn.execute("UPDATE users SET name = ?, username = ?, home_region = ? WHERE id = ?",
                     (user.name, user.username, region, user.id))
    if user.who_can_add is not None:  # a message's sender does not say: kept as last told
        conn.execute("UPDATE users SET who_can_add = ? WHERE id = ?", (user.who_can_add, user.id))


def _q_local_user(conn: sqlite3.Connection, phone: str | None,
                  username_key: str | None) -> RemoteUser | None:
    """An account homed here, by phone (only if it lets itself be found by number) or by
    username: what another region's lookup is answered."""
    if phone is not None:
        row = conn.execute(
            "SELECT id, name, username, who_can_add FROM users WHERE phone = ? "
            "AND phone_discoverable = 1 AND home_region IS NULL AND disabled = 0",
            (phone,)).fetchone()
    else:
        row = conn.execute(
            "SELECT id, name, username, who_can_add FROM users WHERE username_key = ? "
            "AND home_region IS NULL AND disabled = 0", (username_key,)).fetchone()
    return RemoteUser(id=row[0], name=row[1], username=row[2], who_can_add=row[3]) if row else None


def _q_crossed_blob(conn: sqlite3.Connection, digest: str) -> bool:
    """Whether the blob ``digest`` is a file (or its thumbnail) of a message in a chat across
    regions, or a sticker's (public anyway; one that came with a message from another region
    too): only those are handed to another region."""
    return conn.execute(
        "SELECT 1 FROM media_files f JOIN media_refs r ON r.file_id = COALESCE(f.parent, f.id) "
        "JOIN crossed_messages x ON x.chat_id = r.chat_id AND x.message_id = r.message_id "
        "WHERE f.digest = ? UNION ALL SELECT 1 FROM stickers WHERE file_id = ? "
        "UNION ALL SELECT 1 FROM region_sticker_files WHERE file_id = ? LIMIT 1",
        (digest, digest, digest)).fetchone() is not None


def _q_files_to_send(conn: sqlite3.Connection, media: Media | None,
                     sticker: MessageSticker | None) -> tuple[list[CrossFile], int]:
    files = [] if media is None else msgspec.convert(file_rows(conn, media), list[CrossFile])
    return files, 0 if sticker is None else sticker_size(conn, sticker.file_id)


def _keep_files(conn: sqlite3.Connection, message: CrossMessage, now: float) -> None:
    keep_files(conn, message.sender.id, message.files, message.sticker, now)


def keep_files(conn: sqlite3.Connection, owner_id: int, files: list[CrossFile],
               sticker: MessageSticker | None, now: float) -> None:
    """The files a message from another region carries, under their ids there (their bytes
    were fetched and checked before this transaction: server/region_files.py)."""
    for f in files:
        conn.execute(
            "INSERT OR IGNORE INTO media_files (id, owner_id, digest, size, name, mime, kind, "
            "created, width, height, thumb, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (f.id, owner_id, f.digest, f.size, f.name, f.mime, f.kind, now, f.width,
             f.height, f.thumb, f.parent))
    if sticker is not None:
        conn.execute("INSERT OR IGNORE INTO region_sticker_files (file_id) VALUES (?)",
                     (sticker.file_id,))


def _q_outbox(conn: sqlite3.Connection, region: str, limit: int) -> list[Queued]:
    rows = conn.execute(
        "SELECT o.id, o.sender_id, u.name, u.username, o.recipient_id, o.random_id, o.text, "
        "o.date, o.kind, o.body FROM region_outbox o JOIN users u ON u.id = o.sender_id "
        "WHERE o.region = ? ORDER BY o.id LIMIT ?", (region, limit)).fetchall()
    return [Queued(r[0], RemoteUser(id=r[1], name=r[2], username=r[3]), r[4], r[5], r[6], r[7],
                   r[8], None if r[9] is None else bytes(r[9])) for r in rows]


def _tx_outbox_done(conn: sqlite3.Connection, ids: list[int]) -> None:
    for chunk in chunks(ids):
        conn.execute(f"DELETE FROM region_outbox WHERE id IN ({marks(chunk)})", chunk)


def _q_outbox_depth(conn: sqlite3.Connection) -> dict[str, int]:
    return {r[0]: r[1] for r in conn.execute(
        "SELECT region, COUNT(*) FROM region_outbox GROUP BY region")}


def _advance(conn: sqlite3.Connection, region: str, seq: int) -> str:
    """Take ``seq`` of ``region``'s stream if it is the next one (the row stays locked to
    this transaction on PostgreSQL): :func:`pigeon.domain.regions.cross_order`'s verdict."""
    conn.execute("INSERT OR IGNORE INTO region_inbox (region, last_seq) VALUES (?, 0)",
                 (region,))
    (last,) = conn.execute("SELECT last_seq FROM region_inbox WHERE region = ? /*FOR UPDATE*/",
                           (region,)).fetchone()
    verdict = cross_order(last, seq)
    if verdict == "apply":
        conn.execute("UPDATE region_inbox SET last_seq = ? WHERE region = ?", (seq, region))
    return verdict


def _tx_skip_cross(conn: sqlite3.Connection, region: str, seq: int) -> str:
    """Item ``seq`` of ``region``'s stream is not applied (malformed, refused for good): the
    next one may come."""
    return _advance(conn, region, seq)


def _tx_apply_cross(conn: sqlite3.Connection, message: Cross, seq: int, now: float,
                    default_who_can_message: str | None,
                    here: str = "") -> tuple[str, list[Push]]:
    """Item ``seq`` of the stream from ``message.origin`` into this region's copy of the
    chat, if it is the next one (else nothing: "old" or "early"): pushes for the recipient.
    A message is written once however often it comes (its sequence, and its sender and
    random_id, say whether it was); an edit, delete or read mark is applied once, by its
    sequence, through the same functions as one made here."""
    from .sqlite_groups import _tx_open_private  # noqa: PLC0415  (they import this module)
    from .sqlite_messages import _tx_send_message  # noqa: PLC0415
    from .sqlite_region_events import apply_event  # noqa: PLC0415
    from .sqlite_region_groups import apply_group  # noqa: PLC0415

    if isinstance(message, CrossEnvelope):  # not a chat's: sqlite_region_keys applies it
        raise InvalidArgument("an envelope goes to a device's inbox (apply_envelope)")
    verdict = _advance(conn, message.origin, seq)
    if verdict != "apply":
        return verdict, []
    if isinstance(message, GroupCross):  # its sender may be homed here: not remembered
        return verdict, apply_group(conn, message, now, here)
    _tx_remember_remote(conn, message.sender, message.origin, now)
    row = conn.execute("SELECT home_region FROM users WHERE id = ?",
                       (message.recipient_id,)).fetchone()
    if row is None or row[0] is not None:
        raise NotFound(f"user {message.recipient_id} is not homed here", code="USER_NOT_FOUND")
    if not isinstance(message, CrossMessage):
        return verdict, apply_event(conn, message)
    chat = _tx_open_private(conn, message.sender.id, message.recipient_id, now,
                            default_who_can_message)
    _keep_files(conn, message, now)
    _, _, pushes = _tx_send_message(conn, message.sender.id, chat.id, message.random_id,
                                    message.text, message.date, replied_to(conn, message),
                                    message.fwd_from, sticker=message.sticker,
                                    media=message.media, from_region=True)
    return verdict, pushes


class SqliteRegions:
    """:class:`.region_api.RegionApi` on the shared SQL (both engines)."""

    engine: SqlEngine
    region: str

    async def remember_remote(self, user: RemoteUser, region: str, now: float) -> None:
        await self.engine.write(_tx_remember_remote, user, region, now)

    async def local_user(self, phone: str | None = None,
                         username_key: str | None = None) -> RemoteUser | None:
        return await self.engine.read(_q_local_user, phone, username_key)

    async def outbox(self, region: str, limit: int) -> list[Queued]:
        return await self.engine.read(_q_outbox, region, max(1, min(limit, MAX_OUTBOX_BATCH)))

    async def outbox_done(self, ids: list[int]) -> None:
        await self.engine.write(_tx_outbox_done, ids)

    async def outbox_depth(self) -> dict[str, int]:
        return await self.engine.read(_q_outbox_depth)

    async def crossed_blob(self, digest: str) -> bool:
        return await self.engine.read(_q_crossed_blob, digest)

    async def files_to_send(self, media: Media | None,
                            sticker: MessageSticker | None) -> tuple[list[CrossFile], int]:
        return await self.engine.read(_q_files_to_send, media, sticker)

    async def send_carried(self, sender_id: int, chat_id: int, random_id: int, text: str,
                           now: float, reply_to: int | None, files: list[CrossFile],
                           sticker: MessageSticker | None) -> tuple[Message, int, list[Push]]:
        from .sqlite_region_groups import _tx_send_carried  # noqa: PLC0415  (imports this)

        return await self.engine.write(_tx_send_carried, sender_id, chat_id, random_id, text,
                                       now, reply_to, files, sticker)

    async def apply_cross(self, message: Cross, seq: int, now: float,
                          default_who_can_message: str | None) -> tuple[str, list[Push]]:
        return await self.engine.write(_tx_apply_cross, message, seq, now,
                                       default_who_can_message, self.region)

    async def skip_cross(self, region: str, seq: int) -> str:
        return await self.engine.write(_tx_skip_cross, region, seq)

    async def reserve_user_ids(self, first_id: int, last_id: int) -> None:
        # SQLite gives a new row the largest id + 1, and rows of people homed elsewhere carry
        # ids of other ranges: regions need PostgreSQL's sequence (server/settings.py).
        raise RuntimeError("regions need the PostgreSQL store")

    async def group_home(self, chat_id: int) -> str | None:
        from .sqlite_region_groups import group_home  # noqa: PLC0415  (it imports this module)

        return await self.engine.read(group_home, chat_id)

    async def local_people(self, ids: list[int]) -> list[RemoteUser]:
        from .sqlite_region_groups import _q_people  # noqa: PLC0415  (it imports this module)

        return await self.engine.read(_q_people, ids[:MAX_IDS_PER_CALL])
