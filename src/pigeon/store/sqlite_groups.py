"""Chats and their members (SQLite backend): private chats, groups, roles, titles.

Each transaction reads the rows a rule of :mod:`pigeon.domain.membership` or
:mod:`pigeon.domain.groups` needs, calls it, and writes what it decided.
"""

from __future__ import annotations

import sqlite3

import msgspec

from pigeon.domain import encryption, groups, membership, streams
from pigeon.domain import messages as rules
from pigeon.domain.groups import GroupPolicy
from pigeon.domain.visibility import departure
from pigeon.protocol.types import Chat, Role

from .base import MemberRecord, Push
from .sqlite_log import announce, pts_in
from .sqlite_region_groups import check_invitable, ship_state
from .sqlite_safety import gate_new_private
from .sqlite_service import service_user_id
from .sqlite_people import (
    check_created_quota,
    check_joined_quota,
    forget_invitations,
    invite,
    sort_unblocked_newcomers,
)
from .sqlite_rows import (
    USER_COLS,
    chat_row,
    chat_view,
    existing_users,
    insert_members,
    member_ids,
    member_row,
    members,
    prefixed,
    senior_members,
    standing,
    user_row,
)


def _tx_open_private(conn: sqlite3.Connection, user_id: int, peer_id: int, now: float,
                     default_who_can_message: str | None = None) -> Chat:
    """The private chat of the two, created on first use. With ``default_who_can_message``
    (the server passes its setting) a new chat is a message request for the peer when the
    opener is a stranger to them, or refused (:mod:`pigeon.domain.requests`)."""
    existing_users(conn, [peer_id])
    rules.check_service_rules(to_service_chat=peer_id == service_user_id(conn),
                              forwards_from_service_chat=False)
    pair = membership.private_members(user_id, peer_id)
    a, b = pair[0], pair[-1]
    row = conn.execute(
        "SELECT chat_id FROM private_chats WHERE user_a = ? AND user_b = ?", (a, b)
    ).fetchone()
    if row is None:
        (chat_id,) = conn.execute(
            "INSERT INTO chats (kind, created) VALUES ('private', ?) RETURNING id", (now,)
        ).fetchone()
        conn.execute(
            "INSERT INTO private_chats (user_a, user_b, chat_id) VALUES (?, ?, ?)", (a, b, chat_id)
        )
        insert_members(conn, chat_id, list(pair), "member", now, 0)
        if default_who_can_message is not None and peer_id != user_id:
            gate_new_private(conn, user_id, peer_id, chat_id, now, default_who_can_message)
    else:
        chat_id = row[0]
    return chat_view(conn, chat_id, user_id)


def _tx_create_group(
    conn: sqlite3.Connection, owner_id: int, title: str, named: list[int], now: float,
    max_members: int, policy: GroupPolicy | None = None, large: bool = False,
    secret: bool = False,
) -> tuple[Chat, list[Push]]:
    encryption.check_new_group(secret, large)
    kind = groups.group_kind(large)
    added, invited, refusing = sort_unblocked_newcomers(
        conn, owner_id, groups.founders(owner_id, named), policy)
    check_invitable(conn, invited)
    groups.check_capacity(1, len(added), groups.member_limit(kind, max_members, policy))
    check_created_quota(conn, owner_id, now, policy)
    check_joined_quota(conn, [owner_id, *added], policy)
    (chat_id,) = conn.execute(
        "INSERT INTO chats (kind, title, created, creator_id, secret) VALUES (?, ?, ?, ?, ?) "
        "RETURNING id", (kind, title, now, owner_id, int(secret))
    ).fetchone()
    insert_members(conn, chat_id, [owner_id], "owner", now, 0)
    insert_members(conn, chat_id, added, "member", now, 0)
    pushes = announce(conn, chat_id, affected=[owner_id, *added], now=now)
    ship_state(conn, chat_id, owner_id, [owner_id, *added], [], now)
    invited, invitations = invite(conn, chat_id, owner_id, invited, now, policy)
    view = msgspec.structs.replace(chat_view(conn, chat_id, owner_id),
                                   invited=invited + refusing)
    return view, pushes + invitations


def _tx_add_members(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_ids: list[int], now: float,
    max_members: int, policy: GroupPolicy | None = None,
) -> tuple[Chat, list[Push]]:
    actor = standing(conn, actor_id, chat_id, writing=True)
    membership.may_manage(actor)
    existing_users(conn, user_ids)
    new = groups.newcomers(user_ids, set(member_ids(conn, chat_id)))
    added, invited, refusing = sort_unblocked_newcomers(conn, actor_id, new, policy)
    check_invitable(conn, invited)
    chat = chat_row(conn, chat_id)
    groups.check_capacity(chat.member_count, len(added),
                          groups.member_limit(chat.kind, max_members, policy))
    check_joined_quota(conn, added, policy)
    pushes: list[Push] = []
    if added:
        insert_members(conn, chat_id, added, "member", now,
                       membership.newcomer_history_from(actor.last_message_id))
        forget_invitations(conn, chat_id, added)
        pushes = announce(conn, chat_id, affected=added, now=now)
        ship_state(conn, chat_id, actor_id, added, [], now)
    invited, invitations = invite(conn, chat_id, actor_id, invited, now, policy)
    invited += refusing
    if not added and not invited:
        raise groups.already_members(invited_too=True)
    view = msgspec.structs.replace(chat_view(conn, chat_id, actor_id), invited=invited)
    return view, pushes + invitations


def _tx_remove_member(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_id: int, now: float
) -> tuple[int, list[Push]]:
    actor = standing(conn, actor_id, chat_id, writing=True)
    target = None if user_id == actor_id else member_row(conn, chat_id, user_id)
    removal = membership.removal(actor_id, actor, user_id, target)
    depart(conn, chat_id, user_id, removal.history_from, now)
    large = streams.on_chat_stream(actor.kind)
    # A large chat's members are not all read: the heir is found by the same rule among
    # the longest-standing admins and members, read in order of seniority.
    remaining = senior_members(conn, chat_id) if large else members(conn, chat_id)
    heir = membership.heir(remaining) if removal.owner_leaves else None
    if heir is not None:
        conn.execute("UPDATE members SET role = 'owner' WHERE chat_id = ? AND user_id = ?",
                     (chat_id, heir.user_id))
        remaining = [r._replace(role="owner") if r == heir else r for r in remaining]
    pushes = announce(conn, chat_id, None if large else remaining, departed=[user_id],
                      affected=[heir.user_id] if heir is not None else None, now=now)
    ship_state(conn, chat_id, actor_id, [heir.user_id] if heir is not None else [], [user_id],
               now)
    return pts_in(pushes, actor_id), pushes


def depart(conn: sqlite3.Connection, chat_id: int, user_id: int, history_from: int,
           now: float) -> None:
    """``user_id`` is no longer a member; what they could see ends here: the update log serves
    them no later edit."""
    conn.execute("DELETE FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id))
    (last_id, edit_seq) = conn.execute(
        "UPDATE chats SET member_count = member_count - 1 WHERE id = ? "
        "RETURNING last_message_id, edit_seq", (chat_id,)).fetchone()
    period = departure(history_from, last_id, edit_seq)
    if period is not None:
        conn.execute(
            "INSERT INTO departures (user_id, chat_id, first_id, last_id, edit_seq, date) "
            "VALUES (?, ?, ?, ?, ?, ?)", (user_id, chat_id, *period, now))


def _tx_set_role(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_id: int, role: Role, now: float
) -> tuple[int, list[Push]]:
    actor = standing(conn, actor_id, chat_id, writing=True)
    changes = membership.role_changes(actor_id, actor, user_id,
                                      member_row(conn, chat_id, user_id), role)
    conn.executemany("UPDATE members SET role = ? WHERE chat_id = ? AND user_id = ?",
                     [(new, chat_id, uid) for uid, new in changes])
    pushes = announce(conn, chat_id, affected=[uid for uid, _ in changes], now=now)
    ship_state(conn, chat_id, actor_id, [uid for uid, _ in changes], [], now)
    return pts_in(pushes, actor_id), pushes


def _tx_set_title(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, title: str, now: float
) -> tuple[Chat, list[Push]]:
    membership.may_manage(standing(conn, actor_id, chat_id, writing=True))
    conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))
    ship_state(conn, chat_id, actor_id, [], [], now)
    return chat_view(conn, chat_id, actor_id), announce(conn, chat_id, now=now)


def _q_get_chat(conn: sqlite3.Connection, user_id: int, chat_id: int) -> Chat:
    standing(conn, user_id, chat_id)
    return chat_view(conn, chat_id, user_id)


def _q_members(
    conn: sqlite3.Connection, user_id: int, chat_id: int, offset: int, limit: int
) -> list[MemberRecord]:
    standing(conn, user_id, chat_id)
    # By seniority (membership.seniority): the longest-standing first.
    rows = conn.execute(
        f"SELECT m.role, {prefixed(USER_COLS, 'u')} "
        "FROM members m JOIN users u ON u.id = m.user_id WHERE m.chat_id = ? "
        "ORDER BY m.joined, m.user_id LIMIT ? OFFSET ?", (chat_id, limit, offset),
    )
    return [MemberRecord(user_row(r[1:]), r[0]) for r in rows]


def _q_member_ids(conn: sqlite3.Connection, user_id: int, chat_id: int, limit: int) -> list[int]:
    standing(conn, user_id, chat_id)
    # Those who blocked the user, and a request's recipient until accepted, are not told of
    # them (pigeon.domain.blocks.silenced, pigeon.domain.requests.delivered).
    rows = conn.execute(
        "SELECT m.user_id FROM members m WHERE m.chat_id = ? AND m.user_id != ? "
        "AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id AND b.peer_id = ?) "
        "AND NOT EXISTS (SELECT 1 FROM message_requests r WHERE r.user_id = m.user_id "
        "AND r.chat_id = m.chat_id AND r.state != 'accepted') LIMIT ?",
        (chat_id, user_id, user_id, limit),
    )
    return [r[0] for r in rows]
