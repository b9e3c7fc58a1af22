"""The update log (SQLite backend): numbering each recipient's next ``pts``, logging the
updates a write makes, and reading them back (``get_state``, ``get_difference``).

Who receives an update is the domain's rule (:mod:`pigeon.domain.audience`); this module
resolves an audience into users, allocates their sequence numbers and writes the log rows.
A message update refers to its message row instead of copying it (a group message is one
row, not one copy per member); when read back, it shows what its reader is entitled to
(:mod:`pigeon.domain.visibility`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from pigeon.domain import audience as aud
from pigeon.domain import paging, streams, views
from pigeon.domain.records import ChatRow, Departure, MemberRow
from pigeon.domain.visibility import entitled, member_sees
from pigeon.protocol import updates as up
from pigeon.protocol.errors import NotFound
from pigeon.protocol.types import Message, State
from pigeon.protocol.updates import Difference

from .base import Push
from .sqlite_rows import (
    EDIT,
    MSG_COLS,
    NEW,
    STORED,
    chat_row,
    chunks,
    encode,
    marks,
    members,
    members_named,
    message_row,
    prefixed,
    update_decoder,
    values_rows,
    write_later,
)

from .sqlite_streams import push_chat

FEW_TARGETS = 8  # an update for at most this many users is logged by one INSERT


# -- numbering and logging --------------------------------------------------------------------
# A region writes updates only for the people homed there (home_region NULL): the rows of
# people homed elsewhere (members of a group spanning regions, the other side of a private
# chat across regions) are told by their own region, from its own copy of the chat.
def bump(conn: sqlite3.Connection, user_ids: list[int]) -> list[tuple[int, int]]:
    """Give each user homed here their next pts; returns (user_id, pts) pairs."""
    out: list[tuple[int, int]] = []
    for chunk in chunks(user_ids):
        out += conn.execute(
            f"UPDATE users SET pts = pts + 1 WHERE id IN ({marks(chunk)}) "
            "AND home_region IS NULL RETURNING id, pts", chunk,
        ).fetchall()
    return out


def recipients(conn: sqlite3.Connection, chat_id: int, audience: aud.Audience,
               ) -> list[tuple[int, int]]:
    """The users ``audience`` names in this chat, each with their next pts."""
    if isinstance(audience, aud.Everyone):
        # Every member: one statement, however big the group.
        return conn.execute(
            "UPDATE users SET pts = pts + 1 WHERE id IN "
            "(SELECT user_id FROM members WHERE chat_id = ?) AND home_region IS NULL "
            "RETURNING id, pts", (chat_id,),
        ).fetchall()
    if isinstance(audience, aud.Only):
        return bump(conn, list(audience.user_ids))
    rows = conn.execute("SELECT user_id, history_from FROM members WHERE chat_id = ?", (chat_id,))
    return bump(conn, aud.members_in(audience, rows))


def log_updates(
    conn: sqlite3.Connection, targets: list[tuple[int, int]], kind: int, chat_id: int,
    message_id: int = 0, data: bytes | None = None,
) -> None:
    if len(targets) <= FEW_TARGETS:  # one statement (held back with others on PostgreSQL)
        if targets:
            write_later(conn, "INSERT INTO updates (user_id, pts, kind, chat_id, message_id, "
                        f"data) VALUES {values_rows(6, len(targets))}",
                        tuple(v for uid, pts in targets
                              for v in (uid, pts, kind, chat_id, message_id, data)))
        return
    conn.executemany(
        "INSERT INTO updates (user_id, pts, kind, chat_id, message_id, data) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(uid, pts, kind, chat_id, message_id, data) for uid, pts in targets],
    )


def push_stored(conn: sqlite3.Connection, chat_id: int, update: Any,
                audience: aud.Audience, chat_kind: str = "group", now: float = 0.0) -> Push:
    """Log ``update`` (stored whole) for its audience: on each recipient's own stream, or,
    in a chat of a kind that has its own stream, once there for all its members."""
    if streams.on_chat_stream(chat_kind) and not isinstance(audience, aud.Only):
        return push_chat(conn, chat_id, update, now)
    targets = recipients(conn, chat_id, audience)
    log_updates(conn, targets, STORED, chat_id, 0, encode(update))
    return Push(update, targets)


def push_message(conn: sqlite3.Connection, update: up.NewMessage | up.EditMessage,
                 audience: aud.Audience, chat_kind: str = "group", now: float = 0.0) -> Push:
    """Log a message update for its audience, as a reference to the message row (once, on
    the chat's own stream, for a chat of a kind that has one)."""
    message = update.message
    if streams.on_chat_stream(chat_kind) and not isinstance(audience, aud.Only):
        return push_chat(conn, message.chat_id, update, now)
    targets = recipients(conn, message.chat_id, audience)
    kind = NEW if isinstance(update, up.NewMessage) else EDIT
    log_updates(conn, targets, kind, message.chat_id, message.id)
    return Push(update, targets)


def announce(conn: sqlite3.Connection, chat_id: int, current: list[MemberRow] | None = None,
             departed: list[int] | tuple[int, ...] = (), affected: list[int] | None = None,
             now: float = 0.0) -> list[Push]:
    """A ChatUpdate for every member (each sees their own role) and for ``departed``.
    ``current``: the members, if the transaction already read them. In a chat with its own
    stream, one item there for all, and on their own streams only for the members whose
    standing changed (``affected``: joined, promoted; None: nobody) and ``departed``."""
    chat = chat_row(conn, chat_id)
    if streams.on_chat_stream(chat.kind):
        return _announce_on_stream(conn, chat, departed, affected or [], now)
    rows = members(conn, chat_id) if current is None else current
    return [push_stored(conn, chat_id, up.ChatUpdate(pts=0, chat=view), aud.only(*user_ids))
            for view, user_ids in views.member_views(
                chat, ((r.user_id, r.role) for r in rows), departed)]


def _announce_on_stream(conn: sqlite3.Connection, chat: ChatRow, departed: Sequence[int],
                        affected: list[int], now: float) -> list[Push]:
    # On the shared stream the chat carries no role: each member's own comes on their
    # own stream, when it changes (docs/protocol.md, "Streams").
    shared = push_chat(conn, chat.id, up.ChatUpdate(pts=0, chat=views.chat_view(chat, None)), now)
    rows = members_named(conn, chat.id, affected)
    return [shared, *(push_stored(conn, chat.id, up.ChatUpdate(pts=0, chat=view),
                                  aud.only(*user_ids))
                      for view, user_ids in views.member_views(
                          chat, ((r.user_id, r.role) for r in rows), departed))]


def pts_in(pushes: list[Push], user_id: int) -> int:
    """The pts ``user_id`` reached through ``pushes`` (0: none was for them)."""
    pts = 0
    for push in pushes:
        for uid, p in push.targets:
            if uid == user_id:
                pts = max(pts, p)
    return pts


# -- reading it back --------------------------------------------------------------------------
def _q_state(conn: sqlite3.Connection, user_id: int) -> State:
    row = conn.execute("SELECT pts FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")
    return State(pts=row[0], date=0.0, streams=dict(conn.execute(
        "SELECT 'chat:' || m.chat_id, COALESCE(s.head, 0) FROM members m "
        "JOIN chats c ON c.id = m.chat_id AND c.kind = ? "
        "LEFT JOIN streams s ON s.name = 'chat:' || m.chat_id WHERE m.user_id = ?",
        (streams.LARGE_CHAT_KIND, user_id))))


def _q_difference(
    conn: sqlite3.Connection, user_id: int, pts: int, limit: int, max_bytes: int
) -> Difference:
    state = _q_state(conn, user_id)
    cursor = conn.execute(
        f"SELECT u.pts, u.kind, u.data, m.edit_seq, {prefixed(MSG_COLS, 'm')} "
        "FROM updates u LEFT JOIN messages m ON u.kind IN (1, 2) AND m.chat_id = u.chat_id "
        "AND m.id = u.message_id WHERE u.user_id = ? AND u.pts > ? ORDER BY u.pts LIMIT ?",
        (user_id, pts, limit),
    )
    try:
        return paging.difference(_updates(cursor, _Entitlement(conn, user_id)), pts, state.pts,
                                 limit, max_bytes)
    finally:
        cursor.close()  # a cut page never reads the rows after it


def _updates(cursor: sqlite3.Cursor, entitlement: _Entitlement) -> Iterator[up.AnyUpdate]:
    for row in cursor:
        upts, kind = row[0], row[1]
        if kind == STORED:
            yield msgspec.structs.replace(update_decoder.decode(row[2]), pts=upts)
            continue
        message = entitlement.message(message_row(row[4:]), row[3])
        cls = up.NewMessage if kind == NEW else up.EditMessage
        yield cls(pts=upts, message=message)


class _Entitlement:
    """Reads what the visibility rule needs of one reader, for one page of their log: their
    membership once per chat, their departures from a chat once, and only if needed."""

    def __init__(self, conn: sqlite3.Connection, user_id: int) -> None:
        self.conn = conn
        self.user_id = user_id
        self.history_from: dict[int, int | None] = {}  # chat -> where they see from; None: out
        self.departures: dict[int, list[Departure]] = {}

    def message(self, live: Message, edit_seq: int) -> Message:
        chat_id = live.chat_id
        if chat_id not in self.history_from:
            row = self.conn.execute(
                "SELECT history_from FROM members WHERE chat_id = ? AND user_id = ?",
                (chat_id, self.user_id),
            ).fetchone()
            self.history_from[chat_id] = None if row is None else int(row[0])
        since = self.history_from[chat_id]
        if member_sees(since, live.id):
            return live
        if chat_id not in self.departures:
            self.departures[chat_id] = [Departure(*r) for r in self.conn.execute(
                "SELECT first_id, last_id, edit_seq FROM departures "
                "WHERE user_id = ? AND chat_id = ?", (self.user_id, chat_id))]
        return entitled(live, edit_seq, since, self.departures[chat_id])
