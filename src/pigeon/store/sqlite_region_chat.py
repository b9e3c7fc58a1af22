"""Pins and typing in a private chat across regions (SQLite operations, run by both engines;
docs/architecture.md, "Regions").

A pin or an unpin is an event as an edit is (:mod:`.sqlite_region_events`): queued in the
pinner's own transaction, naming the message by its author and random_id, and applied in
the other copy through :func:`.sqlite_chat_settings._tx_pin_message`, whose rules run again
there. The last pin wins in both copies: a chat keeps its pin's date and author, and one
from the other region applies only if it comes after (by date, then author id), so pins
made on both sides at once end the same on both. Typing is not stored anywhere: the server
publishes it (server/region_typing.py); the store only says who of the receiving region may
hear it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from pigeon.domain import membership
from pigeon.protocol.errors import NotFound
from pigeon.protocol.regions import CrossPin

from .base import Push
from .sqlite_groups import _q_member_ids
from .sqlite_region_events import _located
from .sqlite_regions import Sides, cross_sides, queue
from .sqlite_rows import standing

if TYPE_CHECKING:
    from .sqlite import SqlEngine


# -- here: queued in the pin's own transaction ---------------------------------------------------
def queue_pin(conn: sqlite3.Connection, actor_id: int, chat_id: int, pinned: int,
              date: float) -> None:
    """A pin (``pinned``: this copy's message id) or an unpin (0) by someone homed here, in a
    private chat whose other side is homed elsewhere."""
    body: dict[str, object] = {"message": None}
    if pinned:
        row = conn.execute("SELECT sender_id, random_id FROM crossed_messages "
                           "WHERE chat_id = ? AND message_id = ?", (chat_id, pinned)).fetchone()
        if row is None:
            return  # not a chat across regions
        body["message"] = [row[0], row[1]]
    sides = cross_sides(conn, chat_id, actor_id)
    if sides is not None:
        queue(conn, sides, "pin", actor_id, 0, "", date, body)


# -- there: applied in the other region -----------------------------------------------------------
def apply_pin(conn: sqlite3.Connection, event: CrossPin) -> list[Push]:
    """A pin or unpin from the region of ``event.sender``, in this copy of their private chat
    with ``event.recipient_id``; NotFound if the copy lacks the chat or the message."""
    from .sqlite_chat_settings import _tx_pin_message  # noqa: PLC0415  (it imports this module)

    actor = event.sender.id
    if event.message is not None:
        chat_id, message_id = _located(conn, event.message, actor, event.recipient_id)
    else:
        found = _private_chat(conn, actor, event.recipient_id)
        if found is None:
            raise NotFound("no private chat of the two in this region", code="CHAT_NOT_FOUND")
        chat_id, message_id = found, None
    if not _newer(conn, chat_id, event.date, actor):
        return []  # a later pin here (or one that came before) stands, as it does there
    return _tx_pin_message(conn, actor, chat_id, message_id, event.date)[1]


def _newer(conn: sqlite3.Connection, chat_id: int, date: float, actor_id: int) -> bool:
    """Whether a pin at ``date`` by ``actor_id`` comes after the chat's pin: by date, then by
    author id, the same order in both copies, so that both keep the same last pin."""
    row = conn.execute("SELECT pin_date, pin_by FROM chats WHERE id = ?", (chat_id,)).fetchone()
    return row is None or (date, actor_id) > (float(row[0]), int(row[1]))


def _private_chat(conn: sqlite3.Connection, one: int, other: int) -> int | None:
    pair = membership.private_members(one, other)
    row = conn.execute("SELECT chat_id FROM private_chats WHERE user_a = ? AND user_b = ?",
                       (pair[0], pair[-1])).fetchone()
    return None if row is None else int(row[0])


# -- typing ---------------------------------------------------------------------------------------
def _q_typing_peer(conn: sqlite3.Connection, user_id: int, chat_id: int) -> Sides | None:
    """The side homed elsewhere of the private chat ``chat_id`` of ``user_id`` (who must be
    in it), or None: not a private chat, or both sides homed here."""
    if standing(conn, user_id, chat_id).kind != "private":
        return None
    return cross_sides(conn, chat_id, user_id)


def _q_typing_audience(conn: sqlite3.Connection, sender_id: int, recipient_id: int,
                       limit: int) -> tuple[int, list[int]] | None:
    """This copy's private chat of the two and who in it hears ``sender_id`` typing (not one
    who blocked them, nor a message request's recipient before accepting it: the rule of
    local typing, :func:`.sqlite_groups._q_member_ids`); None if there is no such chat here.
    """
    chat_id = _private_chat(conn, sender_id, recipient_id)
    if chat_id is None or sender_id == recipient_id:
        return None
    return chat_id, _q_member_ids(conn, sender_id, chat_id, limit)



class SqliteRegionChat:
    """The typing part of :class:`.region_api.RegionApi` on the shared SQL (both engines)."""

    engine: SqlEngine

    async def typing_peer(self, user_id: int, chat_id: int) -> Sides | None:
        return await self.engine.read(_q_typing_peer, user_id, chat_id)

    async def typing_audience(self, sender_id: int, recipient_id: int,
                              limit: int) -> tuple[int, list[int]] | None:
        return await self.engine.read(_q_typing_audience, sender_id, recipient_id, limit)
