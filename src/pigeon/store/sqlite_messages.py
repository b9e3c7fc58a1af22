"""Messages (SQLite backend): sending, editing, deleting, reading, history.

Each transaction reads the rows a rule of :mod:`pigeon.domain.messages` needs, calls it, and
writes what it decided; who is told is :mod:`pigeon.domain.audience`'s rule.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import msgspec

from pigeon.domain import audience, encryption, membership, paging
from pigeon.domain import messages as rules
from pigeon.domain.people import makes_contact
from pigeon.protocol import updates as up
from pigeon.domain.records import Standing
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.media import Media
from pigeon.protocol.types import FwdFrom, Message, MessageSticker

from .base import Push
from .sqlite_chat_settings import unpin_deleted
from .sqlite_media import refer, unrefer
from .sqlite_log import pts_in, push_message, push_stored
from .sqlite_region_events import queue_delete, queue_edit, queue_read
from .sqlite_region_groups import ship_delete, ship_edit, ship_message, ship_read
from .sqlite_regions import check_crossable, private_sides, queue_remote
from .sqlite_safety import gate_columns, gate_on, hide, private_gate
from .sqlite_service import is_service_chat
from .sqlite_rows import (
    MSG_COLS,
    N_MSG_COLS,
    chunks,
    encode,
    marks,
    message,
    message_row,
    messages,
    standing,
    unread_count,
    write_later,
)


def _tx_send_message(
    conn: sqlite3.Connection, sender_id: int, chat_id: int, random_id: int, text: str,
    now: float, reply_to: int | None, fwd_from: FwdFrom | None,
    sticker: MessageSticker | None = None, media: Media | None = None,
    ciphertext: bytes | None = None, *, from_region: bool = False,
    message_id: int | None = None,
) -> tuple[Message, int, list[Push]]:
    # from_region: a message from another region (sqlite_regions._tx_apply_cross), whose
    # forward header names a chat of that region: its home checked where it came from;
    # message_id: its id there, in a replica of a group of that region (the same in both)
    # The sender's standing, whether the chat is the service chat, whether this random_id
    # was seen, the private chat's gate and its sides' regions: one statement, because every
    # send starts here (each statement is a round trip on PostgreSQL)
    row = conn.execute(_SENDING, (*[sender_id] * 7, random_id, chat_id)).fetchone()
    seen = row[7:10] if row is not None else conn.execute(  # no such chat: a replay may say so
        "SELECT chat_id, message_id, pts FROM random_ids WHERE sender_id = ? AND random_id = ?",
        (sender_id, random_id),
    ).fetchone()
    if seen is not None and seen[0] is not None:
        rules.check_replay(seen[0], chat_id)
        first = message(conn, seen[0], seen[1])
        if first is None:  # cannot be: a message row is never deleted, only wiped
            raise rules.no_message(seen[0], seen[1])
        return first, seen[2], []
    sender = membership.member(
        None if row is None or row[1] is None else Standing(*row[:6]), chat_id)
    service_chat = bool(row[6]) if row is not None else False
    if fwd_from is not None:
        encryption.check_forward(False, sender.secret)
    encryption.check_body(sender.secret, text, ciphertext,
                          attached=sticker is not None or media is not None)
    rules.check_service_rules(
        to_service_chat=sender.kind == "private" and service_chat,
        forwards_from_service_chat=fwd_from is not None and not from_region
        and is_service_chat(conn, fwd_from.chat_id))
    if row is not None and row[18] is not None and not from_region:
        # a replica is written by its group's region only (server/region_groups.py forwards)
        raise InvalidArgument("this group lives in another region: send there",
                              code="NOT_SUPPORTED_ACROSS_REGIONS")
    remote = (private_sides(sender_id, row[15], row[10], row[16])
              if sender.kind == "private" and row is not None else None)
    if remote is not None and remote.local_id == sender_id:  # to another region: the outbox
        check_crossable(ciphertext is not None)
    withheld = None
    if makes_contact(sender.kind):
        assert row is not None  # standing() found the chat
        withheld = gate_on(conn, sender_id, chat_id, row[10:15], sending=True)  # notes the send
    if reply_to is not None:
        rules.check_reply(message(conn, chat_id, reply_to), sender.history_from, reply_to)
    # standing() locked the chat row (FOR UPDATE on PostgreSQL; SQLite has one writer)
    if message_id is None:
        message_id = sender.last_message_id + 1
    write_later(conn, "UPDATE chats SET last_message_id = ? WHERE id = ?",
                (message_id, chat_id))
    write_later(
        conn,
        "INSERT INTO messages (chat_id, id, sender_id, date, text, reply_to, fwd, sticker, "
        "media, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (chat_id, message_id, sender_id, now, text, reply_to,
         encode(fwd_from) if fwd_from else None, encode(sticker) if sticker else None,
         encode(media) if media else None, ciphertext),
    )
    if media is not None:
        refer(conn, media, chat_id, message_id)
    reading = rules.read_on_send(sender, message_id)
    new = Message(chat_id=chat_id, id=message_id, sender_id=sender_id, date=now, text=text,
                  reply_to=reply_to, fwd_from=fwd_from, sticker=sticker, media=media,
                  ciphertext=ciphertext)
    if withheld is not None and not withheld.shown:
        hide(conn, withheld.recipient_id, chat_id, [message_id])
    told = audience.new_message() if withheld is None else audience.withheld(sender_id)
    if remote is not None and withheld is None:
        told = audience.local_side(remote.local_id)
    pushes = [push_message(conn, up.NewMessage(pts=0, message=new), told, sender.kind, now)]
    # after the pts are numbered: that statement reads members, this one writes them; apart,
    # the writes before can ride in front of it on PostgreSQL (write_later)
    _set_read_mark(conn, chat_id, sender_id, reading.mark)
    pushes += _tell_authors(conn, sender_id, chat_id, reading, sender.kind)
    sender_pts = pts_in(pushes[:1], sender_id)
    write_later(
        conn, "INSERT INTO random_ids (sender_id, random_id, chat_id, message_id, pts) "
        "VALUES (?, ?, ?, ?, ?)", (sender_id, random_id, chat_id, message_id, sender_pts),
    )
    if remote is not None:
        queue_remote(conn, remote, sender_id, random_id, text, now, chat_id, message_id,
                     fwd_from, reply_to, media, sticker)
    elif row is not None and row[17] and not from_region:
        ship_message(conn, chat_id, message_id, sender_id, random_id, text, now, fwd_from,
                     reply_to, media, sticker, ciphertext)
    return new, sender_pts, pushes


def sending_columns(sender: str = "?") -> str:
    """What a send reads first (_tx_send_message): the sender's standing, whether the chat is
    the service chat, the random_id's first use, in a private chat what private_gate() reads
    of the peer (one peer at most: the join is empty in any other kind of chat, and so is the
    row of the gate), and both sides' home regions. ``sender``: the SQL for the sender's id
    (a parameter, four times here, or a column: postgres_bulk reads many sends at once)."""
    return ("c.kind, m.role, m.history_from, m.read_inbox_max_id, c.last_message_id, "
            "c.secret, EXISTS (SELECT 1 FROM service_chats s WHERE s.chat_id = c.id), "
            f"r.chat_id, r.message_id, r.pts, {gate_columns(sender)}, "
            f"(SELECT home_region FROM users WHERE id = {sender}), "
            "(SELECT home_region FROM users WHERE id = p.user_id)")


def sending_joins(sender: str = "?", random_id: str = "?") -> str:
    """The rows :func:`sending_columns` reads besides the chat ``c`` (sender: three times)."""
    return (f"LEFT JOIN members m ON m.chat_id = c.id AND m.user_id = {sender} "
            "LEFT JOIN members p ON c.kind = 'private' AND p.chat_id = c.id "
            f"AND p.user_id != {sender} "
            f"LEFT JOIN random_ids r ON r.sender_id = {sender} AND r.random_id = {random_id} ")


# whether the chat is a group with replicas in other regions, and whether it is itself a
# replica (sqlite_region_groups): read with the rest, not in round trips of their own
_SPANNING = "EXISTS (SELECT 1 FROM group_regions g WHERE g.chat_id = c.id), c.home_region"
# the chat row locked as standing() locks it; parameters: the sender seven times, the
# random_id, the chat
_SENDING = (f"SELECT {sending_columns()}, {_SPANNING} FROM chats c {sending_joins()}"
            "WHERE c.id = ? /*FOR UPDATE OF c*/")


def _q_get_message(conn: sqlite3.Connection, user_id: int, chat_id: int,
                   message_id: int) -> Message:
    return _seen(conn, standing(conn, user_id, chat_id), chat_id, message_id)


def _seen(conn: sqlite3.Connection, reader: Standing, chat_id: int, message_id: int) -> Message:
    return rules.seen_message(message(conn, chat_id, message_id), reader.history_from, chat_id,
                              message_id)


def _tx_edit_message(
    conn: sqlite3.Connection, user_id: int, chat_id: int, message_id: int, text: str, now: float,
    crossing: bool = False, *, from_region: bool = False,
) -> tuple[Message, list[Push]]:
    # crossing, here and in the delete and the read: this deployment has regions
    # (Store.crosses_regions); without, nothing looks for the other region's copy of a private
    # chat or for a group's replicas, which on PostgreSQL would be one more round trip for
    # every edit, delete and read
    # from_region, here and in the delete: applied from another region's stream (a replica
    # is written only so)
    editor = standing(conn, user_id, chat_id, writing=not from_region)
    encryption.check_plain_edit(editor.secret)
    edited = _seen(conn, editor, chat_id, message_id)
    rules.check_edit(edited, user_id)
    (edit_seq,) = conn.execute(
        "UPDATE chats SET edit_seq = edit_seq + 1 WHERE id = ? RETURNING edit_seq", (chat_id,)
    ).fetchone()
    conn.execute(
        "UPDATE messages SET text = ?, edit_date = ?, edit_seq = ? WHERE chat_id = ? AND id = ?",
        (text, now, edit_seq, chat_id, message_id),
    )
    edited = msgspec.structs.replace(edited, text=text, edit_date=now)
    told = audience.edit(message_id)
    if editor.kind == "private" and private_gate(conn, user_id, chat_id) is not None:
        told = audience.withheld(user_id)  # an edit must not bring back what was kept
    push = push_message(conn, up.EditMessage(pts=0, message=edited), told, editor.kind, now)
    if crossing and editor.kind == "private":
        queue_edit(conn, user_id, chat_id, message_id, text, now)
    elif crossing:
        ship_edit(conn, chat_id, message_id, user_id, text, now)
    return edited, [push]


def _tx_delete_messages(
    conn: sqlite3.Connection, user_id: int, chat_id: int, message_ids: list[int],
    for_everyone: bool, crossing: bool = False, *, from_region: bool = False,
) -> tuple[int, int, list[Push]]:
    actor = standing(conn, user_id, chat_id, writing=for_everyone and not from_region)
    found = rules.deletable(messages(conn, chat_id, sorted(set(message_ids))), actor.history_from)
    if not found:
        return 0, 0, []
    ids = [m.id for m in found]
    if for_everyone:
        rules.check_delete_for_everyone(actor, user_id, found)
        conn.executemany(
            "UPDATE messages SET deleted = 1, text = '', fwd = NULL, sticker = NULL, "
            "media = NULL, ciphertext = NULL WHERE chat_id = ? AND id = ?",
            [(chat_id, i) for i in ids],
        )
        unrefer(conn, chat_id, ids)  # their files become garbage unless sent elsewhere too
        update = up.DeleteMessages(pts=0, chat_id=chat_id, message_ids=ids, for_everyone=True)
        now = time.time()
        push = push_stored(conn, chat_id, update, audience.delete_for_everyone(ids, user_id),
                           actor.kind, now)
        pushes = [push, *unpin_deleted(conn, chat_id, ids, now)]
        if crossing and actor.kind == "private":
            queue_delete(conn, user_id, chat_id, ids, now)
        elif crossing:
            ship_delete(conn, chat_id, ids, user_id, now)
        return pts_in(pushes, user_id), len(ids), pushes
    else:
        conn.executemany(
            "INSERT OR IGNORE INTO hidden_messages (user_id, chat_id, message_id) VALUES (?, ?, ?)",
            [(user_id, chat_id, i) for i in ids],
        )
        update = up.DeleteMessages(pts=0, chat_id=chat_id, message_ids=ids, for_everyone=False)
        push = push_stored(conn, chat_id, update, audience.only(user_id))
    return pts_in([push], user_id), len(ids), [push]


def history_page(conn: sqlite3.Connection, user_id: int, chat_id: int, history_from: int,
                 before: int | None, limit: int, max_bytes: int | None) -> list[Message]:
    """Newest first: what shows in the member's history (:func:`rules.in_history`) before
    ``before``, paged by :func:`paging.page`."""
    low, high = paging.history_range(history_from, before)
    cursor = conn.execute(
        f"SELECT {MSG_COLS}, EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ? "
        "AND h.chat_id = m.chat_id AND h.message_id = m.id) FROM messages m "
        "WHERE chat_id = ? AND id > ? AND id < ? ORDER BY id DESC",
        (user_id, chat_id, low, high),
    )
    try:
        return paging.page(_shown(cursor, history_from), limit, max_bytes)
    finally:
        cursor.close()  # row by row: a cut page never loads the rows after it


def _shown(cursor: sqlite3.Cursor, history_from: int) -> Iterator[Message]:
    for row in cursor:
        shown = message_row(row)
        if rules.in_history(shown, history_from, bool(row[N_MSG_COLS])):
            yield shown


def _q_history(
    conn: sqlite3.Connection, user_id: int, chat_id: int, before_id: int | None, limit: int,
    max_bytes: int,
) -> list[Message]:
    history_from = standing(conn, user_id, chat_id).history_from
    return history_page(conn, user_id, chat_id, history_from, before_id, limit, max_bytes)


def _tx_read_history(
    conn: sqlite3.Connection, user_id: int, chat_id: int, max_id: int, crossing: bool = False,
    came_from: str | None = None,
) -> tuple[int, int, list[Push]]:
    # came_from: a read mark of a group spanning regions, from that region (not sent back)
    reader = standing(conn, user_id, chat_id)
    reading = rules.read_up_to(reader, max_id)
    if reading is None:
        unread = unread_count(conn, user_id, chat_id,
                              rules.unread_after(reader.read_inbox_max_id, reader.history_from))
        (pts,) = conn.execute("SELECT pts FROM users WHERE id = ?", (user_id,)).fetchone()
        return pts, unread, []
    _set_read_mark(conn, chat_id, user_id, reading.mark)
    unread = unread_count(conn, user_id, chat_id,
                          rules.unread_after(reading.mark, reader.history_from))
    own = push_stored(conn, chat_id, up.ReadInbox(pts=0, chat_id=chat_id, max_id=reading.mark,
                                                  unread_count=unread), audience.only(user_id))
    if crossing and reader.kind == "private" and reading.tells:
        queue_read(conn, user_id, chat_id, reading.after, reading.told, time.time())
    elif crossing and reading.tells and rules.tells_authors(reader.kind):
        ship_read(conn, user_id, chat_id, reading.told, time.time(), came_from)
    return pts_in([own], user_id), unread, [own, *_tell_authors(conn, user_id, chat_id, reading,
                                                                 reader.kind)]


def _set_read_mark(conn: sqlite3.Connection, chat_id: int, user_id: int, mark: int) -> None:
    write_later(conn, "UPDATE members SET read_inbox_max_id = ? WHERE chat_id = ? "
                "AND user_id = ?", (mark, chat_id, user_id))


def _tell_authors(conn: sqlite3.Connection, reader_id: int, chat_id: int,
                  reading: rules.Reading, kind: str) -> list[Push]:
    """ReadOutbox to the authors of the messages just read (:func:`rules.authors_to_tell`)."""
    if not reading.tells or not rules.tells_authors(kind):
        return []
    authors = rules.authors_to_tell(conn.execute(
        "SELECT DISTINCT m.sender_id, mb.read_outbox_max_id FROM messages m "
        "LEFT JOIN members mb ON mb.chat_id = m.chat_id AND mb.user_id = m.sender_id "
        "WHERE m.chat_id = ? AND m.id > ? AND m.id <= ?", (chat_id, reading.after, reading.told),
    ), reader_id, reading.told)
    if not authors:
        return []
    for chunk in chunks(authors):
        conn.execute(
            "UPDATE members SET read_outbox_max_id = ? WHERE chat_id = ? "
            f"AND user_id IN ({marks(chunk)})", (reading.told, chat_id, *chunk))
    update = up.ReadOutbox(pts=0, chat_id=chat_id, max_id=reading.told)
    return [push_stored(conn, chat_id, update, audience.only(*authors))]
