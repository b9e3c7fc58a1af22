"""SQL of who may see whom, consent to groups (invitations) and group quotas (SQLite backend).

Tables (migration 2): ``discovered`` (a user found another by username or phone),
``wrote_to`` (a user sent a message to another in their private chat: the "contacts" of the
``who_can_add`` setting), ``invitations`` (pending, one per invitee and group), and
``users.who_can_add`` (NULL: the server's default). The rules are in :mod:`pigeon.domain.groups`.
"""

from __future__ import annotations

import sqlite3

import msgspec

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.types import Chat

from .base import GroupPolicy, InvitationRecord, Push, UserRecord
from pigeon.domain.groups import admission
from .sqlite_rows import (
    IN_CHUNK, USER_COLS, chat_view, existing_users, insert_members, push_chat_to_members,
    push_stored, user_row,
)


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


def no_such_user(user_id: int) -> NotFound:
    """One answer for "no such user" and "not one you can see" (as for an unknown id)."""
    return NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")


# -- who may see whom ---------------------------------------------------------------------------
def visible(conn: sqlite3.Connection, viewer_id: int, ids: list[int]) -> set[int]:
    """The ids among ``ids`` that ``viewer_id`` may see (Store.visible_users says who)."""
    seen: set[int] = set()
    for chunk in _chunks(sorted(set(ids))):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT u.id FROM users u WHERE u.id IN ({marks}) AND (u.id = ? "
            "OR EXISTS (SELECT 1 FROM discovered d WHERE d.user_id = ? AND d.peer_id = u.id) "
            "OR EXISTS (SELECT 1 FROM wrote_to w WHERE w.user_id = u.id AND w.peer_id = ?) "
            "OR EXISTS (SELECT 1 FROM invitations i WHERE i.user_id = ? AND i.inviter_id = u.id) "
            "OR EXISTS (SELECT 1 FROM members a JOIN chats c ON c.id = a.chat_id "
            "AND c.kind = 'group' JOIN members b ON b.chat_id = a.chat_id AND b.user_id = ? "
            "WHERE a.user_id = u.id))",
            (*chunk, viewer_id, viewer_id, viewer_id, viewer_id, viewer_id),
        )
        seen.update(r[0] for r in rows)
    return seen


def _q_visible_users(conn: sqlite3.Connection, viewer_id: int, ids: list[int]) -> list[UserRecord]:
    allowed = sorted(visible(conn, viewer_id, ids))
    out: list[UserRecord] = []
    for chunk in _chunks(allowed):
        marks = ",".join("?" * len(chunk))
        out += [user_row(r) for r in conn.execute(
            f"SELECT {USER_COLS} FROM users WHERE id IN ({marks})", chunk)]
    return out


def _tx_remember_discovery(conn: sqlite3.Connection, user_id: int, peer_id: int) -> None:
    if user_id != peer_id:
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
    for chunk in _chunks(user_ids):
        marks = ",".join("?" * len(chunk))
        settings.update(conn.execute(
            f"SELECT id, COALESCE(who_can_add, ?) FROM users WHERE id IN ({marks})",
            (policy.default_who_can_add, *chunk)).fetchall())
        contacts.update(r[0] for r in conn.execute(
            f"SELECT user_id FROM wrote_to WHERE peer_id = ? AND user_id IN ({marks})",
            (adder_id, *chunk)))
    # Whether the adder can see them matters only to those the first two rows do not decide
    # (and costs a look at their groups): ask only about those.
    sees = visible(conn, adder_id, [u for u in user_ids
                                    if settings[u] != "everyone" and u not in contacts])
    added: list[int] = []
    invited: list[int] = []
    for uid in user_ids:
        verdict = admission(settings[uid], uid in contacts, uid in sees)
        if verdict == "unknown":
            raise no_such_user(uid)
        if verdict == "refuse":
            raise Forbidden(f"user {uid} does not accept group invitations from you",
                            code="USER_PRIVACY_RESTRICTED")
        (added if verdict == "add" else invited).append(uid)
    return added, invited


def check_joined_quota(conn: sqlite3.Connection, user_ids: list[int],
                       policy: GroupPolicy | None) -> None:
    if policy is None:
        return
    for chunk in _chunks(user_ids):
        marks = ",".join("?" * len(chunk))
        for uid, count in conn.execute(
            "SELECT m.user_id, COUNT(*) FROM members m JOIN chats c ON c.id = m.chat_id "
            f"WHERE c.kind = 'group' AND m.user_id IN ({marks}) GROUP BY m.user_id", chunk,
        ):
            if count >= policy.max_groups_joined:
                raise Conflict(f"user {uid} is in {policy.max_groups_joined} groups, the most "
                               "one account may be in", code="QUOTA_EXCEEDED")


def check_created_quota(conn: sqlite3.Connection, owner_id: int, now: float,
                        policy: GroupPolicy | None) -> None:
    if policy is None:
        return
    (count,) = conn.execute(
        "SELECT COUNT(*) FROM chats WHERE creator_id = ? AND created > ?",
        (owner_id, now - 86400.0)).fetchone()
    if count >= policy.max_groups_created_per_day:
        raise Conflict(f"you created {count} groups in the last 24 hours, the most allowed; "
                       "try again later", code="QUOTA_EXCEEDED")


def invite(conn: sqlite3.Connection, chat_id: int, inviter_id: int, user_ids: list[int],
           now: float, policy: GroupPolicy | None) -> tuple[list[int], list[Push]]:
    """Invite those not yet invited to this group; returns (newly invited, pushes)."""
    fresh: list[int] = []
    for chunk in _chunks(user_ids):
        marks = ",".join("?" * len(chunk))
        pending = {r[0] for r in conn.execute(
            f"SELECT user_id FROM invitations WHERE chat_id = ? AND user_id IN ({marks})",
            (chat_id, *chunk))}
        fresh += [u for u in chunk if u not in pending]
    if not fresh:
        return [], []
    if policy is not None:
        for chunk in _chunks(fresh):
            marks = ",".join("?" * len(chunk))
            for uid, count in conn.execute(
                f"SELECT user_id, COUNT(*) FROM invitations WHERE user_id IN ({marks}) "
                "GROUP BY user_id", chunk,
            ):
                if count >= policy.max_pending_invitations:
                    raise Conflict(f"user {uid} has too many invitations waiting",
                                   code="QUOTA_EXCEEDED")
    conn.executemany(
        "INSERT INTO invitations (user_id, chat_id, inviter_id, created) VALUES (?, ?, ?, ?)",
        [(uid, chat_id, inviter_id, now) for uid in fresh])
    view = _invited_view(conn, chat_id, fresh[0], inviter_id)
    return fresh, [push_stored(conn, up.ChatUpdate(pts=0, chat=view), fresh, chat_id)]


def forget_invitations(conn: sqlite3.Connection, chat_id: int, user_ids: list[int]) -> None:
    """They joined (an admin added them): their invitations to this group are moot."""
    conn.executemany("DELETE FROM invitations WHERE user_id = ? AND chat_id = ?",
                     [(uid, chat_id) for uid in user_ids])


def _invited_view(conn: sqlite3.Connection, chat_id: int, user_id: int, inviter_id: int) -> Chat:
    return msgspec.structs.replace(chat_view(conn, chat_id, user_id), role=None,
                                   invited_by=inviter_id)


def _no_invitation(chat_id: int) -> NotFound:
    return NotFound(f"you have no invitation to chat {chat_id}", code="INVITATION_NOT_FOUND")


def _q_invitations(conn: sqlite3.Connection, user_id: int, limit: int) -> list[InvitationRecord]:
    rows = conn.execute(
        f"SELECT i.chat_id, i.created, {', '.join('u.' + c.strip() for c in USER_COLS.split(','))}"
        " FROM invitations i JOIN users u ON u.id = i.inviter_id WHERE i.user_id = ? "
        "ORDER BY i.created DESC, i.chat_id DESC LIMIT ?", (user_id, limit),
    ).fetchall()
    return [InvitationRecord(_invited_view(conn, r[0], user_id, r[2]), user_row(r[2:]), r[1])
            for r in rows]


def _tx_accept_invitation(
    conn: sqlite3.Connection, user_id: int, chat_id: int, now: float, max_members: int,
    policy: GroupPolicy | None,
) -> tuple[Chat, list[Push]]:
    row = conn.execute("DELETE FROM invitations WHERE user_id = ? AND chat_id = ? RETURNING 1",
                       (user_id, chat_id)).fetchone()
    if row is None:
        raise _no_invitation(chat_id)
    (count, last_id) = conn.execute(
        "SELECT member_count, last_message_id FROM chats WHERE id = ?", (chat_id,)).fetchone()
    if count + 1 > max_members:
        raise Conflict(f"a group holds at most {max_members} members", code="GROUP_FULL")
    check_joined_quota(conn, [user_id], policy)
    # As when an admin adds someone: a newcomer sees the group from the moment they join.
    insert_members(conn, chat_id, [user_id], "member", now, last_id)
    return chat_view(conn, chat_id, user_id), push_chat_to_members(conn, chat_id)


def _tx_decline_invitation(conn: sqlite3.Connection, user_id: int, chat_id: int) -> list[Push]:
    row = conn.execute("DELETE FROM invitations WHERE user_id = ? AND chat_id = ? RETURNING 1",
                       (user_id, chat_id)).fetchone()
    if row is None:
        raise _no_invitation(chat_id)
    # The invitee's other devices learn that the invitation is gone: no role, no inviter.
    view = msgspec.structs.replace(chat_view(conn, chat_id, user_id), role=None)
    return [push_stored(conn, up.ChatUpdate(pts=0, chat=view), [user_id], chat_id)]
