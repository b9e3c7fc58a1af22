"""SQL of who may see whom, consent to groups (invitations) and group quotas (SQLite backend).

Tables (migration 2): ``discovered`` (a user found another by username or phone),
``wrote_to`` (a user sent a message to another in their private chat: the "contacts" of the
``who_can_add`` setting), ``invitations`` (pending, one per invitee and group), and
``users.who_can_add`` (NULL: the server's default). The rules are in :mod:`pigeon.domain.groups` and
:mod:`pigeon.domain.people`; this module reads the rows they need and writes what they decide.
"""

from __future__ import annotations

import sqlite3

from pigeon.domain import audience, blocks, groups, membership, people, views
from pigeon.domain.groups import GroupPolicy
from pigeon.protocol import updates as up
from pigeon.protocol.types import Chat

from .base import InvitationRecord, Push, UserRecord
from .sqlite_log import announce, push_stored
from .sqlite_region_groups import ship_state
from .sqlite_rows import (
    USER_COLS,
    blocked_by,
    chat_row,
    chat_view,
    chunks,
    existing_users,
    insert_members,
    marks,
    prefixed,
    user_row,
)


# -- who may see whom ---------------------------------------------------------------------------
def visible(conn: sqlite3.Connection, viewer_id: int, ids: list[int]) -> set[int]:
    """The ids among ``ids`` that ``viewer_id`` may see (:func:`pigeon.domain.people.may_see`)."""
    seen: set[int] = set()
    for chunk in chunks(sorted(set(ids))):
        rows = conn.execute(
            "SELECT u.id, u.id = ?, "
            "EXISTS (SELECT 1 FROM discovered d WHERE d.user_id = ? AND d.peer_id = u.id), "
            "EXISTS (SELECT 1 FROM wrote_to w WHERE w.user_id = u.id AND w.peer_id = ?), "
            "EXISTS (SELECT 1 FROM invitations i WHERE i.user_id = ? AND i.inviter_id = u.id), "
            "EXISTS (SELECT 1 FROM members a JOIN chats c ON c.id = a.chat_id "
            "AND c.kind = 'group' JOIN members b ON b.chat_id = a.chat_id AND b.user_id = ? "
            f"WHERE a.user_id = u.id) FROM users u WHERE u.id IN ({marks(chunk)})",
            (viewer_id, viewer_id, viewer_id, viewer_id, viewer_id, *chunk),
        )
        seen.update(r[0] for r in rows if people.may_see(people.Ties(*map(bool, r[1:]))))
    return seen


def _q_visible_users(conn: sqlite3.Connection, viewer_id: int, ids: list[int]) -> list[UserRecord]:
    allowed = sorted(visible(conn, viewer_id, ids))
    out: list[UserRecord] = []
    for chunk in chunks(allowed):
        out += [user_row(r) for r in conn.execute(
            f"SELECT {USER_COLS} FROM users WHERE id IN ({marks(chunk)})", chunk)]
    return out


def _tx_remember_discovery(conn: sqlite3.Connection, user_id: int, peer_id: int) -> None:
    if people.remembers_discovery(user_id, peer_id):
        conn.execute("INSERT OR IGNORE INTO discovered (user_id, peer_id) VALUES (?, ?)",
                     (user_id, peer_id))


def note_private_send(conn: sqlite3.Connection, sender_id: int, chat_id: int) -> None:
    """The sender wrote to the other side of this private chat (a "contact" from now on)."""
    conn.execute(
        "INSERT OR IGNORE INTO wrote_to (user_id, peer_id) SELECT ?, user_id FROM members "
        "WHERE chat_id = ? AND user_id != ?", (sender_id, chat_id, sender_id))


def _q_who_can_add(conn: sqlite3.Connection, user_id: int) -> str | None:
    row = conn.execute("SELECT who_can_add FROM users WHERE id = ?", (user_id,)).fetchone()
    return row[0] if row else None


def _tx_set_who_can_add(conn: sqlite3.Connection, user_id: int, value: str) -> None:
    conn.execute("UPDATE users SET who_can_add = ? WHERE id = ?", (value, user_id))


# -- consent ------------------------------------------------------------------------------------
def sort_newcomers(
    conn: sqlite3.Connection, adder_id: int, user_ids: list[int], policy: GroupPolicy | None
) -> tuple[list[int], list[int]]:
    """Split the people an adder names into (added now, invited); raise for the others."""
    existing_users(conn, user_ids)
    if policy is None or not user_ids:
        return list(user_ids), []
    settings: dict[int, str] = {}
    contacts: set[int] = set()
    for chunk in chunks(user_ids):
        settings.update(conn.execute(
            f"SELECT id, COALESCE(who_can_add, ?) FROM users WHERE id IN ({marks(chunk)})",
            (policy.default_who_can_add, *chunk)).fetchall())
        contacts.update(r[0] for r in conn.execute(
            f"SELECT user_id FROM wrote_to WHERE peer_id = ? AND user_id IN ({marks(chunk)})",
            (adder_id, *chunk)))
    sees = visible(conn, adder_id, [u for u in user_ids
                                    if groups.needs_sight(settings[u], u in contacts)])
    return groups.sort_newcomers(user_ids, settings, contacts, sees)


def sort_unblocked_newcomers(
    conn: sqlite3.Connection, adder_id: int, user_ids: list[int], policy: GroupPolicy | None
) -> tuple[list[int], list[int], list[int]]:
    """:func:`sort_newcomers` for those who did not block the adder; returns (added,
    invited, blocked the adder). The last answer to the adder as invited, and nothing is
    stored for them (:mod:`pigeon.domain.blocks`)."""
    askable, refusing = blocks.split_blocked(user_ids, blocked_by(conn, adder_id, user_ids))
    existing_users(conn, refusing)
    added, invited = sort_newcomers(conn, adder_id, askable, policy)
    return added, invited, refusing


def check_joined_quota(conn: sqlite3.Connection, user_ids: list[int],
                       policy: GroupPolicy | None) -> None:
    if policy is None:
        return
    for chunk in chunks(user_ids):
        groups.check_joined(conn.execute(
            "SELECT m.user_id, COUNT(*) FROM members m JOIN chats c ON c.id = m.chat_id "
            f"WHERE c.kind = 'group' AND m.user_id IN ({marks(chunk)}) GROUP BY m.user_id",
            chunk), policy)


def check_created_quota(conn: sqlite3.Connection, owner_id: int, now: float,
                        policy: GroupPolicy | None) -> None:
    if policy is None:
        return
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM chats WHERE creator_id = ? AND created > ?",
        (owner_id, groups.creation_window_start(now))).fetchone()
    groups.check_created(count, policy)


def invite(conn: sqlite3.Connection, chat_id: int, inviter_id: int, user_ids: list[int],
           now: float, policy: GroupPolicy | None) -> tuple[list[int], list[Push]]:
    """Invite those not yet invited to this group; returns (newly invited, pushes)."""
    pending: set[int] = set()
    for chunk in chunks(user_ids):
        pending.update(r[0] for r in conn.execute(
            f"SELECT user_id FROM invitations WHERE chat_id = ? AND user_id IN ({marks(chunk)})",
            (chat_id, *chunk)))
    fresh = groups.fresh_invitees(user_ids, pending)
    if not fresh:
        return [], []
    if policy is not None:
        for chunk in chunks(fresh):
            groups.check_pending(conn.execute(
                f"SELECT user_id, COUNT(*) FROM invitations WHERE user_id IN ({marks(chunk)}) "
                "GROUP BY user_id", chunk), policy)
    conn.executemany(
        "INSERT INTO invitations (user_id, chat_id, inviter_id, created) VALUES (?, ?, ?, ?)",
        [(uid, chat_id, inviter_id, now) for uid in fresh])
    view = views.invited_view(chat_row(conn, chat_id), inviter_id)
    return fresh, [push_stored(conn, chat_id, up.ChatUpdate(pts=0, chat=view),
                               audience.only(*fresh))]


def forget_invitations(conn: sqlite3.Connection, chat_id: int, user_ids: list[int]) -> None:
    """They joined (an admin added them): their invitations to this group are moot."""
    conn.executemany("DELETE FROM invitations WHERE user_id = ? AND chat_id = ?",
                     [(uid, chat_id) for uid in user_ids])


def _q_invitations(conn: sqlite3.Connection, user_id: int, limit: int) -> list[InvitationRecord]:
    rows = conn.execute(
        f"SELECT i.chat_id, i.created, {prefixed(USER_COLS, 'u')}"
        " FROM invitations i JOIN users u ON u.id = i.inviter_id WHERE i.user_id = ? "
        "ORDER BY i.created DESC, i.chat_id DESC LIMIT ?", (user_id, limit),
    ).fetchall()
    return [InvitationRecord(views.invited_view(chat_row(conn, r[0]), r[2]), user_row(r[2:]),
                             r[1]) for r in rows]


def _take_invitation(conn: sqlite3.Connection, user_id: int, chat_id: int) -> None:
    row = conn.execute("DELETE FROM invitations WHERE user_id = ? AND chat_id = ? RETURNING 1",
                       (user_id, chat_id)).fetchone()
    if row is None:
        raise groups.no_invitation(chat_id)


def _tx_accept_invitation(
    conn: sqlite3.Connection, user_id: int, chat_id: int, now: float, max_members: int,
    policy: GroupPolicy | None,
) -> tuple[Chat, list[Push]]:
    _take_invitation(conn, user_id, chat_id)
    chat = chat_row(conn, chat_id)
    groups.check_capacity(chat.member_count, 1,
                          groups.member_limit(chat.kind, max_members, policy))
    check_joined_quota(conn, [user_id], policy)
    insert_members(conn, chat_id, [user_id], "member", now,
                   membership.newcomer_history_from(chat.last_message_id))
    ship_state(conn, chat_id, user_id, [user_id], [], now)
    return chat_view(conn, chat_id, user_id), announce(conn, chat_id, affected=[user_id],
                                                       now=now)


def _tx_decline_invitation(conn: sqlite3.Connection, user_id: int, chat_id: int) -> list[Push]:
    _take_invitation(conn, user_id, chat_id)
    # The invitee's other devices learn that the invitation is gone: no role, no inviter.
    view = views.chat_view(chat_row(conn, chat_id), None)
    return [push_stored(conn, chat_id, up.ChatUpdate(pts=0, chat=view), audience.only(user_id))]
