"""SQL of blocks, abuse reports, contacts and the message-request gate (SQLite backend).

Tables (migration 7): ``blocks``, ``reports``, ``contacts``, ``message_requests`` and
``users.who_can_message`` (NULL: the server's default). The rules are in
:mod:`pigeon.domain.blocks` and :mod:`pigeon.domain.requests`; this module reads the rows they
need and writes what they decide.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from typing import NamedTuple

from pigeon.domain import blocks, requests
from pigeon.domain import messages as message_rules
from pigeon.domain.requests import RequestState

from .base import ContactRecord, UserRecord
from .sqlite_people import visible
from .sqlite_rows import USER_COLS, message, prefixed, standing, user_row


# -- blocks -------------------------------------------------------------------------------------
def _tx_block(conn: sqlite3.Connection, user_id: int, peer_id: int, now: float) -> None:
    (count,) = conn.execute("SELECT COUNT(*) FROM blocks WHERE user_id = ?",
                            (user_id,)).fetchone()
    blocks.check_block(user_id, peer_id, peer_id in visible(conn, user_id, [peer_id]), count)
    conn.execute("INSERT OR IGNORE INTO blocks (user_id, peer_id, created) VALUES (?, ?, ?)",
                 (user_id, peer_id, now))
    # Their waiting invitations to groups go too: a block refuses those as well.
    conn.execute("DELETE FROM invitations WHERE user_id = ? AND inviter_id = ?",
                 (user_id, peer_id))


def _tx_unblock(conn: sqlite3.Connection, user_id: int, peer_id: int) -> None:
    conn.execute("DELETE FROM blocks WHERE user_id = ? AND peer_id = ?", (user_id, peer_id))


def _q_blocked(conn: sqlite3.Connection, user_id: int, offset: int,
               limit: int) -> list[UserRecord]:
    return [user_row(r) for r in conn.execute(
        f"SELECT {prefixed(USER_COLS, 'u')} FROM blocks b JOIN users u ON u.id = b.peer_id "
        "WHERE b.user_id = ? ORDER BY b.created DESC, b.peer_id DESC LIMIT ? OFFSET ?",
        (user_id, limit, offset))]


# -- reports ------------------------------------------------------------------------------------
def _tx_report(conn: sqlite3.Connection, reporter_id: int, chat_id: int, message_id: int,
               reason: str, now: float) -> None:
    """File a report of a message the reporter can see; the text is kept as it was, since
    its author may edit or delete it afterwards. Reporting the same message twice is one
    report."""
    history_from = standing(conn, reporter_id, chat_id).history_from
    reported = message_rules.seen_message(message(conn, chat_id, message_id), history_from,
                                          chat_id, message_id)
    (today,) = conn.execute(
        "SELECT COUNT(*) FROM reports WHERE reporter_id = ? AND created > ?",
        (reporter_id, blocks.report_window_start(now))).fetchone()
    blocks.check_report(reporter_id, reported.sender_id, today)
    conn.execute(
        "INSERT OR IGNORE INTO reports (reporter_id, chat_id, message_id, sender_id, text, "
        "reason, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (reporter_id, chat_id, message_id, reported.sender_id, reported.text, reason, now))


# -- contacts -----------------------------------------------------------------------------------
CONTACT_COLS = f"{prefixed(USER_COLS, 'u')}, c.name, c.created"


def _contact(row: tuple) -> ContactRecord:  # type: ignore[type-arg]
    n = USER_COLS.count(",") + 1
    return ContactRecord(user_row(row[:n]), row[n], row[n + 1])


def _tx_add_contact(conn: sqlite3.Connection, user_id: int, peer_id: int, name: str,
                    now: float) -> ContactRecord:
    (count,) = conn.execute("SELECT COUNT(*) FROM contacts WHERE user_id = ?",
                            (user_id,)).fetchone()
    already = conn.execute("SELECT 1 FROM contacts WHERE user_id = ? AND peer_id = ?",
                           (user_id, peer_id)).fetchone() is not None
    requests.check_contact(user_id, peer_id, peer_id in visible(conn, user_id, [peer_id]),
                           count, already)
    conn.execute(
        "INSERT INTO contacts (user_id, peer_id, name, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, peer_id) DO UPDATE SET name = excluded.name",
        (user_id, peer_id, name, now))
    return _contact(conn.execute(
        f"SELECT {CONTACT_COLS} FROM contacts c JOIN users u ON u.id = c.peer_id "
        "WHERE c.user_id = ? AND c.peer_id = ?", (user_id, peer_id)).fetchone())


def _tx_remove_contact(conn: sqlite3.Connection, user_id: int, peer_id: int) -> None:
    conn.execute("DELETE FROM contacts WHERE user_id = ? AND peer_id = ?", (user_id, peer_id))


def _q_contacts(conn: sqlite3.Connection, user_id: int, offset: int,
                limit: int) -> list[ContactRecord]:
    return [_contact(r) for r in conn.execute(
        f"SELECT {CONTACT_COLS} FROM contacts c JOIN users u ON u.id = c.peer_id "
        "WHERE c.user_id = ? ORDER BY c.created, c.peer_id LIMIT ? OFFSET ?",
        (user_id, limit, offset))]


# -- the message-request gate -----------------------------------------------------------------
def _acquaintance(conn: sqlite3.Connection, recipient_id: int,
                  sender_id: int) -> requests.Acquaintance:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE user_id = ?1 AND peer_id = ?2), "
        "EXISTS (SELECT 1 FROM wrote_to WHERE user_id = ?1 AND peer_id = ?2), "
        "EXISTS (SELECT 1 FROM discovered WHERE user_id = ?1 AND peer_id = ?2), "
        "EXISTS (SELECT 1 FROM members a JOIN chats c ON c.id = a.chat_id AND c.kind = 'group' "
        "JOIN members b ON b.chat_id = a.chat_id AND b.user_id = ?2 WHERE a.user_id = ?1)",
        (recipient_id, sender_id)).fetchone()
    return requests.Acquaintance(*map(bool, row))


def gate_new_private(conn: sqlite3.Connection, opener_id: int, peer_id: int, chat_id: int,
                     now: float, default_who_can_message: str) -> None:
    """A private chat was just opened by ``opener_id``: decide what it means for its other
    side (:func:`pigeon.domain.requests.first_contact`) and record a pending request, or
    refuse."""
    (setting,) = conn.execute("SELECT COALESCE(who_can_message, ?) FROM users WHERE id = ?",
                              (default_who_can_message, peer_id)).fetchone()
    verdict = requests.first_contact(setting, _acquaintance(conn, peer_id, opener_id))
    requests.check_first_contact(verdict, peer_id)
    if verdict == "request":
        conn.execute(
            "INSERT OR IGNORE INTO message_requests (user_id, chat_id, peer_id, state, created) "
            "VALUES (?, ?, ?, 'pending', ?)", (peer_id, chat_id, opener_id, now))


def request_state(conn: sqlite3.Connection, user_id: int, chat_id: int) -> RequestState | None:
    row = conn.execute("SELECT state FROM message_requests WHERE user_id = ? AND chat_id = ?",
                       (user_id, chat_id)).fetchone()
    return row[0] if row else None


class Withheld(NamedTuple):
    """A private message its recipient is not pushed: ``shown`` says whether it is in their
    history at all (a request's, until declined) or hidden (blocked, declined)."""

    recipient_id: int
    shown: bool


_GATE = (
    "SELECT m.user_id, "
    "EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id AND b.peer_id = ?1), "
    "(SELECT r.state FROM message_requests r "
    " WHERE r.user_id = m.user_id AND r.chat_id = m.chat_id), "
    "EXISTS (SELECT 1 FROM message_requests r "
    " WHERE r.user_id = ?1 AND r.chat_id = m.chat_id AND r.state = 'pending'), "
    "EXISTS (SELECT 1 FROM wrote_to w WHERE w.user_id = ?1 AND w.peer_id = m.user_id) "
    "FROM members m WHERE m.chat_id = ?2 AND m.user_id != ?1")


def private_gate(conn: sqlite3.Connection, sender_id: int, chat_id: int,
                 sending: bool = False) -> Withheld | None:
    """For a message or edit the sender makes in this private chat: what its other side is
    kept from (None: nothing). Writing in a chat whose request one has pending accepts it.
    ``sending``: a new message, after which the sender has written to the peer (a
    "contact" from now on: :func:`.sqlite_people.note_private_send`)."""
    # One statement for the peer, whether they blocked the sender, their request's state,
    # whether the sender has one pending and has written to them: this runs on every private
    # send, and each statement is a round trip on PostgreSQL (bench/send_throughput.py).
    return gate_on(conn, sender_id, chat_id, conn.execute(_GATE, (sender_id, chat_id)).fetchone(),
                   sending)


def gate_columns(sender: str = "?") -> str:
    """_GATE's columns for the peer ``p`` of the private chat ``c``, to be read with other
    rows in one statement (a send's first: sqlite_messages), ``sender`` the SQL for the
    sender's id (by default a parameter, three times)."""
    return (
        "p.user_id, "
        f"EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = p.user_id AND b.peer_id = {sender}), "
        "(SELECT r.state FROM message_requests r WHERE r.user_id = p.user_id "
        "AND r.chat_id = c.id), "
        "EXISTS (SELECT 1 FROM message_requests r "
        f" WHERE r.user_id = {sender} AND r.chat_id = c.id AND r.state = 'pending'), "
        f"EXISTS (SELECT 1 FROM wrote_to w WHERE w.user_id = {sender} AND w.peer_id = p.user_id)")


def gate_on(conn: sqlite3.Connection, sender_id: int, chat_id: int,
            row: tuple[Any, ...] | None, sending: bool = False) -> Withheld | None:
    """:func:`private_gate`, given its row (_GATE's columns; None or a NULL peer: no peer)."""
    if row is None or row[0] is None:
        return None
    peer_id, blocked, state, sender_pending, wrote = row
    if sending and not wrote:  # the first time only: after that it would change nothing
        conn.execute("INSERT OR IGNORE INTO wrote_to (user_id, peer_id) VALUES (?, ?)",
                     (sender_id, peer_id))
    if sender_pending:
        conn.execute("UPDATE message_requests SET state = 'accepted' WHERE user_id = ? "
                     "AND chat_id = ? AND state = 'pending'", (sender_id, chat_id))
    if blocks.silenced(bool(blocked)):
        return Withheld(peer_id, shown=False)
    if requests.delivered(state):
        return None
    return Withheld(peer_id, shown=not requests.hidden(state))


def hide(conn: sqlite3.Connection, user_id: int, chat_id: int, message_ids: list[int]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO hidden_messages (user_id, chat_id, message_id) VALUES (?, ?, ?)",
        [(user_id, chat_id, i) for i in message_ids])


def _q_who_can_message(conn: sqlite3.Connection, user_id: int) -> str | None:
    row = conn.execute("SELECT who_can_message FROM users WHERE id = ?", (user_id,)).fetchone()
    return row[0] if row else None


def _tx_set_who_can_message(conn: sqlite3.Connection, user_id: int, value: str) -> None:
    conn.execute("UPDATE users SET who_can_message = ? WHERE id = ?", (value, user_id))
