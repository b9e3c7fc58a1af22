"""Edits, deletes for everyone and read marks in a private chat across regions (SQLite
operations, run by both engines; docs/architecture.md, "Regions").

Each region keeps its own copy of the chat, with its own message ids, so what happens to a
message is told to the other copy by the message's author and random_id (``crossed_messages``
maps this copy's ids to them; ``random_ids`` maps them back). The home region of whoever
acted decides whether they may (its own rules, in its own transaction) and queues the event
in the same transaction as the change; the other region applies it through the same store
functions as a change made there, once (by its stream sequence, :func:`.sqlite_regions._advance`),
in the order it happened (one stream per pair of regions carries messages and events alike).
Pins go the same way (:mod:`.sqlite_region_chat`).
"""

from __future__ import annotations

import sqlite3

from pigeon.protocol.errors import NotFound
from pigeon.protocol.regions import (
    Cross, CrossDelete, CrossEdit, CrossPin, CrossRead, MessageRef,
)

from .base import Push
from .sqlite_regions import cross_sides, queue
from .sqlite_rows import chunks, marks, message, standing


# -- here: queued in the change's own transaction ------------------------------------------------
def queue_edit(conn: sqlite3.Connection, editor_id: int, chat_id: int, message_id: int,
               text: str, date: float) -> None:
    """An edit of a message that crossed regions, by its author homed here."""
    row = conn.execute("SELECT sender_id, random_id FROM crossed_messages WHERE chat_id = ? "
                       "AND message_id = ?", (chat_id, message_id)).fetchone()
    if row is None:
        return  # not a chat across regions (or a message from before it crossed anything)
    sides = cross_sides(conn, chat_id, editor_id)
    if sides is not None:
        queue(conn, sides, "edit", editor_id, row[1], text, date)


def queue_delete(conn: sqlite3.Connection, actor_id: int, chat_id: int, message_ids: list[int],
                 date: float) -> None:
    """A delete for everyone, by someone homed here, of messages that crossed regions."""
    refs: list[list[int]] = []
    for chunk in chunks(message_ids):
        refs += [[r[0], r[1]] for r in conn.execute(
            "SELECT sender_id, random_id FROM crossed_messages WHERE chat_id = ? "
            f"AND message_id IN ({marks(chunk)}) ORDER BY message_id", (chat_id, *chunk))]
    if not refs:
        return
    sides = cross_sides(conn, chat_id, actor_id)
    if sides is not None:
        queue(conn, sides, "delete", actor_id, 0, "", date, {"messages": refs})


def queue_read(conn: sqlite3.Connection, reader_id: int, chat_id: int, after: int, told: int,
               date: float) -> None:
    """A read mark, by someone homed here, that passed messages of the side homed elsewhere:
    the newest of them names how far (the author's region tells the author)."""
    row = conn.execute(
        "SELECT sender_id, random_id FROM crossed_messages WHERE chat_id = ? AND message_id > ? "
        "AND message_id <= ? AND sender_id != ? ORDER BY message_id DESC LIMIT 1",
        (chat_id, after, told, reader_id)).fetchone()
    if row is None:
        return
    sides = cross_sides(conn, chat_id, reader_id)
    if sides is not None and sides.remote_id == row[0]:
        queue(conn, sides, "read", reader_id, row[1], "", date)


# -- there: applied in the other region -----------------------------------------------------------
def apply_event(conn: sqlite3.Connection, event: Cross) -> list[Push]:
    """An edit, delete or read mark from the region of ``event.sender``, in the copy of their
    private chat with ``event.recipient_id`` (homed here); NotFound if this copy lacks the
    message (it was never delivered here): the caller skips the event."""
    from .sqlite_messages import (  # noqa: PLC0415  (it imports this module)
        _tx_delete_messages,
        _tx_read_history,
    )
    from .sqlite_region_chat import apply_pin  # noqa: PLC0415  (it imports this module)

    actor = event.sender.id
    if isinstance(event, CrossPin):
        return apply_pin(conn, event)
    if isinstance(event, CrossEdit):
        chat_id, message_id = _located(conn, MessageRef(actor, event.random_id), actor,
                                       event.recipient_id)
        return edit_once(conn, actor, chat_id, message_id, event)
    if isinstance(event, CrossDelete):
        found: dict[int, list[int]] = {}
        for ref in event.messages:
            try:
                chat_id, message_id = _located(conn, ref, actor, event.recipient_id)
            except NotFound:
                continue  # never delivered here: nothing to delete
            found.setdefault(chat_id, []).append(message_id)
        pushes: list[Push] = []
        for chat_id, ids in found.items():
            pushes += _tx_delete_messages(conn, actor, chat_id, ids, True, from_region=True)[2]
        return pushes
    if isinstance(event, CrossRead):
        chat_id, message_id = _located(conn, MessageRef(event.recipient_id, event.random_id),
                                       actor, event.recipient_id)
        return _tx_read_history(conn, actor, chat_id, message_id)[2]
    raise NotFound(f"no way to apply a {type(event).__name__} here")


def edit_once(conn: sqlite3.Connection, actor: int, chat_id: int, message_id: int,
              event: CrossEdit) -> list[Push]:
    """An edit from another region, applied here unless it already was (the same edit
    published twice, past JetStream's duplicate window)."""
    from .sqlite_messages import _tx_edit_message  # noqa: PLC0415  (it imports this module)

    shown = message(conn, chat_id, message_id)
    if shown is not None and shown.text == event.text and shown.edit_date == event.date:
        return []
    return _tx_edit_message(conn, actor, chat_id, message_id, event.text, event.date,
                            from_region=True)[1]


def _located(conn: sqlite3.Connection, ref: MessageRef, actor_id: int,
             recipient_id: int) -> tuple[int, int]:
    """This copy's (chat, message id) of ``ref``, which must be in the private chat of the
    two; NotFound otherwise."""
    row = conn.execute("SELECT chat_id, message_id FROM random_ids WHERE sender_id = ? "
                       "AND random_id = ?", (ref.sender_id, ref.random_id)).fetchone()
    if row is None or ref.sender_id not in (actor_id, recipient_id):
        raise NotFound("no such message in this region's copy of the chat",
                       code="MESSAGE_NOT_FOUND")
    chat_id, message_id = int(row[0]), int(row[1])
    if (standing(conn, actor_id, chat_id).kind != "private"
            or standing(conn, recipient_id, chat_id).kind != "private"):
        raise NotFound("the message is not in the private chat of the two",
                       code="MESSAGE_NOT_FOUND")
    return chat_id, message_id
