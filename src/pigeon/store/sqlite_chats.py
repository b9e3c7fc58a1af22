"""SQL of chats, messages and the update log (SQLite backend)."""

from __future__ import annotations

import sqlite3

import msgspec

from pigeon.protocol import updates as up
from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.types import Chat, Dialog, FwdFrom, Message, Role, State
from pigeon.protocol.updates import Difference

from .base import MemberRecord, Push
from .sqlite_service import is_service_chat, service_user_id
from .sqlite_rows import (
    EDIT, MSG_COLS, NEW, STORED, USER_COLS, bump, bump_members, chat_view, encode,
    existing_users, insert_members, log_updates, member_ids, membership, message_row,
    push_chat_to_members, push_stored, require_admin, require_group, unread_count,
    update_decoder, user_row,
)


# -- chats ------------------------------------------------------------------------------------
def _tx_open_private(conn: sqlite3.Connection, user_id: int, peer_id: int, now: float) -> Chat:
    existing_users(conn, [peer_id])
    if peer_id == service_user_id(conn):
        raise Forbidden("the Pigeon service account takes no messages", code="FORBIDDEN")
    a, b = sorted((user_id, peer_id))
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
        insert_members(conn, chat_id, sorted({a, b}), "member", now, 0)
    else:
        chat_id = row[0]
    return chat_view(conn, chat_id, user_id)


def _tx_create_group(
    conn: sqlite3.Connection, owner_id: int, title: str, member_ids_: list[int], now: float,
    max_members: int,
) -> tuple[Chat, list[Push]]:
    others = existing_users(conn, sorted(set(member_ids_) - {owner_id}))
    if len(others) + 1 > max_members:
        raise Conflict(f"a group holds at most {max_members} members", code="GROUP_FULL")
    (chat_id,) = conn.execute(
        "INSERT INTO chats (kind, title, created) VALUES ('group', ?, ?) RETURNING id", (title, now)
    ).fetchone()
    insert_members(conn, chat_id, [owner_id], "owner", now, 0)
    insert_members(conn, chat_id, others, "member", now, 0)
    return chat_view(conn, chat_id, owner_id), push_chat_to_members(conn, chat_id)


def _tx_add_members(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_ids: list[int], now: float,
    max_members: int,
) -> tuple[Chat, list[Push]]:
    kind, role = membership(conn, actor_id, chat_id)[:2]
    require_group(kind)
    require_admin(role)
    existing_users(conn, user_ids)
    (count, last_id) = conn.execute(
        "SELECT member_count, last_message_id FROM chats WHERE id = ?", (chat_id,)
    ).fetchone()
    present = set(member_ids(conn, chat_id))
    new = sorted(set(user_ids) - present)
    if not new:
        raise Conflict("every one of them is already a member", code="ALREADY_MEMBER")
    if count + len(new) > max_members:
        raise Conflict(f"a group holds at most {max_members} members", code="GROUP_FULL")
    # A newcomer sees the group from the moment they join, not its earlier history.
    insert_members(conn, chat_id, new, "member", now, last_id)
    return chat_view(conn, chat_id, actor_id), push_chat_to_members(conn, chat_id)


def _tx_remove_member(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_id: int
) -> tuple[int, list[Push]]:
    kind, actor_role = membership(conn, actor_id, chat_id)[:2]
    require_group(kind)
    if user_id != actor_id:
        require_admin(actor_role)
        row = conn.execute(
            "SELECT role FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"user {user_id} is not in this group", code="USER_NOT_FOUND")
        if row[0] == "owner" or (row[0] == "admin" and actor_role != "owner"):
            raise Forbidden("only the owner can remove an admin", code="NOT_ADMIN")
    conn.execute("DELETE FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id))
    conn.execute("UPDATE chats SET member_count = member_count - 1 WHERE id = ?", (chat_id,))
    if user_id == actor_id and actor_role == "owner":
        # The owner left: the longest-standing admin, else member, inherits the group.
        heir = conn.execute(
            "SELECT user_id FROM members WHERE chat_id = ? "
            "ORDER BY role != 'admin', joined, user_id LIMIT 1", (chat_id,),
        ).fetchone()
        if heir is not None:
            conn.execute(
                "UPDATE members SET role = 'owner' WHERE chat_id = ? AND user_id = ?",
                (chat_id, heir[0]),
            )
    pushes = push_chat_to_members(conn, chat_id, also=[user_id])
    return _pts_in(pushes, actor_id), pushes


def _tx_set_role(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, user_id: int, role: Role
) -> tuple[int, list[Push]]:
    kind, actor_role = membership(conn, actor_id, chat_id)[:2]
    require_group(kind)
    if actor_role != "owner":
        raise Forbidden("only the owner can change roles", code="NOT_ADMIN")
    if conn.execute(
        "SELECT 1 FROM members WHERE chat_id = ? AND user_id = ?", (chat_id, user_id)
    ).fetchone() is None:
        raise NotFound(f"user {user_id} is not in this group", code="USER_NOT_FOUND")
    if user_id == actor_id:
        raise Conflict("the owner hands ownership to someone else", code="PEER_IS_SELF")
    conn.execute(
        "UPDATE members SET role = ? WHERE chat_id = ? AND user_id = ?", (role, chat_id, user_id)
    )
    if role == "owner":
        conn.execute(
            "UPDATE members SET role = 'admin' WHERE chat_id = ? AND user_id = ?",
            (chat_id, actor_id),
        )
    pushes = push_chat_to_members(conn, chat_id)
    return _pts_in(pushes, actor_id), pushes


def _tx_set_title(
    conn: sqlite3.Connection, actor_id: int, chat_id: int, title: str
) -> tuple[Chat, list[Push]]:
    kind, role = membership(conn, actor_id, chat_id)[:2]
    require_group(kind)
    require_admin(role)
    conn.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))
    return chat_view(conn, chat_id, actor_id), push_chat_to_members(conn, chat_id)


def _pts_in(pushes: list[Push], user_id: int) -> int:
    pts = 0
    for push in pushes:
        for uid, p in push.targets:
            if uid == user_id:
                pts = max(pts, p)
    return pts


def _q_get_chat(conn: sqlite3.Connection, user_id: int, chat_id: int) -> Chat:
    membership(conn, user_id, chat_id)
    return chat_view(conn, chat_id, user_id)


def _last_visible(conn: sqlite3.Connection, user_id: int, chat_id: int, history_from: int,
                  before: int | None, limit: int) -> list[Message]:
    rows = conn.execute(
        f"SELECT {MSG_COLS} FROM messages m WHERE chat_id = ? AND id > ? AND id < ? "
        "AND deleted = 0 AND NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = ? "
        "AND h.chat_id = m.chat_id AND h.message_id = m.id) ORDER BY id DESC LIMIT ?",
        (chat_id, history_from, before if before is not None else 2**62, user_id, limit),
    )
    return [message_row(r) for r in rows]


def _q_dialogs(conn: sqlite3.Connection, user_id: int) -> list[Dialog]:
    rows = conn.execute(
        "SELECT chat_id, history_from, read_inbox_max_id, read_outbox_max_id FROM members "
        "WHERE user_id = ?", (user_id,),
    ).fetchall()
    dialogs = []
    for chat_id, history_from, read_in, read_out in rows:
        last = _last_visible(conn, user_id, chat_id, history_from, None, 1)
        dialogs.append(Dialog(
            chat=chat_view(conn, chat_id, user_id), last_message=last[0] if last else None,
            unread_count=unread_count(conn, user_id, chat_id, max(read_in, history_from)),
            read_inbox_max_id=read_in, read_outbox_max_id=read_out,
        ))
    dialogs.sort(key=lambda d: (d.last_message.date if d.last_message else 0.0, d.chat.id),
                 reverse=True)
    return dialogs


def _q_members(
    conn: sqlite3.Connection, user_id: int, chat_id: int, offset: int, limit: int
) -> list[MemberRecord]:
    membership(conn, user_id, chat_id)
    rows = conn.execute(
        f"SELECT m.role, {', '.join('u.' + c.strip() for c in USER_COLS.split(','))} "
        "FROM members m JOIN users u ON u.id = m.user_id WHERE m.chat_id = ? "
        "ORDER BY m.joined, m.user_id LIMIT ? OFFSET ?", (chat_id, limit, offset),
    )
    return [MemberRecord(user_row(r[1:]), r[0]) for r in rows]


def _q_member_ids(conn: sqlite3.Connection, user_id: int, chat_id: int, limit: int) -> list[int]:
    membership(conn, user_id, chat_id)
    rows = conn.execute(
        "SELECT user_id FROM members WHERE chat_id = ? AND user_id != ? LIMIT ?",
        (chat_id, user_id, limit),
    )
    return [r[0] for r in rows]


# -- messages ---------------------------------------------------------------------------------
def _tx_send_message(
    conn: sqlite3.Connection, sender_id: int, chat_id: int, random_id: int, text: str,
    now: float, reply_to: int | None, fwd_from: FwdFrom | None,
) -> tuple[Message, int, list[Push]]:
    seen = conn.execute(
        "SELECT chat_id, message_id, pts FROM random_ids WHERE sender_id = ? AND random_id = ?",
        (sender_id, random_id),
    ).fetchone()
    if seen is not None:
        if seen[0] != chat_id:
            raise Conflict("this random_id was used for another message",
                           code="RANDOM_ID_DUPLICATE")
        row = conn.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE chat_id = ? AND id = ?", (seen[0], seen[1])
        ).fetchone()
        return message_row(row), seen[2], []
    kind, _, history_from, read_before, last_id = membership(conn, sender_id, chat_id)
    if kind == "private" and is_service_chat(conn, chat_id):
        raise Forbidden("the Pigeon service account takes no messages", code="FORBIDDEN")
    if fwd_from is not None and is_service_chat(conn, fwd_from.chat_id):
        # "Forward me the code you just got" is how accounts are stolen: login codes stay put.
        raise Forbidden("messages from the Pigeon service account cannot be forwarded",
                        code="FORBIDDEN")
    # One can only answer what one can see: not deleted, not from before one joined.
    if reply_to is not None and conn.execute(
        "SELECT 1 FROM messages WHERE chat_id = ? AND id = ? AND id > ? AND deleted = 0",
        (chat_id, reply_to, history_from),
    ).fetchone() is None:
        raise NotFound(f"no message {reply_to} to reply to", code="MESSAGE_NOT_FOUND")
    message_id = last_id + 1  # the writer is alone: read-then-write is atomic here
    conn.execute("UPDATE chats SET last_message_id = ? WHERE id = ?", (message_id, chat_id))
    conn.execute(
        "INSERT INTO messages (chat_id, id, sender_id, date, text, reply_to, fwd) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (chat_id, message_id, sender_id, now, text, reply_to,
         encode(fwd_from) if fwd_from else None),
    )
    # Sending reads everything before it, as every messenger does.
    conn.execute(
        "UPDATE members SET read_inbox_max_id = ? WHERE chat_id = ? AND user_id = ?",
        (message_id, chat_id, sender_id),
    )
    targets = bump_members(conn, chat_id)
    log_updates(conn, targets, NEW, chat_id, message_id)
    pushes = [Push(up.NewMessage(pts=0, message=Message(
        chat_id=chat_id, id=message_id, sender_id=sender_id, date=now, text=text,
        reply_to=reply_to, fwd_from=fwd_from)), targets)]
    if read_before < message_id - 1:
        pushes += _tell_authors(conn, sender_id, chat_id, read_before, message_id - 1)
    sender_pts = next(p for uid, p in targets if uid == sender_id)
    conn.execute(
        "INSERT INTO random_ids (sender_id, random_id, chat_id, message_id, pts) "
        "VALUES (?, ?, ?, ?, ?)", (sender_id, random_id, chat_id, message_id, sender_pts),
    )
    return pushes[0].update.message, sender_pts, pushes


def _q_get_message(conn: sqlite3.Connection, user_id: int, chat_id: int, message_id: int) -> Message:
    history_from = membership(conn, user_id, chat_id).history_from
    row = conn.execute(
        f"SELECT {MSG_COLS} FROM messages WHERE chat_id = ? AND id = ? AND id > ? AND deleted = 0",
        (chat_id, message_id, history_from),
    ).fetchone()
    if row is None:
        raise NotFound(f"no message {message_id} in chat {chat_id}", code="MESSAGE_NOT_FOUND")
    return message_row(row)


def _tx_edit_message(
    conn: sqlite3.Connection, user_id: int, chat_id: int, message_id: int, text: str, now: float
) -> tuple[Message, list[Push]]:
    message = _q_get_message(conn, user_id, chat_id, message_id)
    if message.sender_id != user_id:
        raise Forbidden("you can only edit your own messages", code="NOT_AUTHOR")
    conn.execute(
        "UPDATE messages SET text = ?, edit_date = ? WHERE chat_id = ? AND id = ?",
        (text, now, chat_id, message_id),
    )
    message = msgspec.structs.replace(message, text=text, edit_date=now)
    # Members who joined after the message never saw it; the edit would hand them its text.
    viewers = [r[0] for r in conn.execute(
        "SELECT user_id FROM members WHERE chat_id = ? AND history_from < ?", (chat_id, message_id)
    )]
    targets = bump(conn, viewers)
    log_updates(conn, targets, EDIT, chat_id, message_id)
    return message, [Push(up.EditMessage(pts=0, message=message), targets)]


def _tx_delete_messages(
    conn: sqlite3.Connection, user_id: int, chat_id: int, message_ids: list[int],
    for_everyone: bool,
) -> tuple[int, int, list[Push]]:
    kind, role, history_from = membership(conn, user_id, chat_id)[:3]
    ids = sorted(set(message_ids))
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, sender_id FROM messages WHERE chat_id = ? AND id > ? AND deleted = 0 "
        f"AND id IN ({marks})", (chat_id, history_from, *ids),
    ).fetchall()
    if not rows:
        return 0, 0, []
    found = [r[0] for r in rows]
    if for_everyone:
        # In a private chat either side may retract any message; in a group, your own,
        # or anyone's if you are an admin.
        if kind == "group" and role == "member" and any(r[1] != user_id for r in rows):
            raise Forbidden("only admins can delete others' messages for everyone",
                            code="NOT_ADMIN")
        conn.executemany(
            "UPDATE messages SET deleted = 1, text = '', fwd = NULL WHERE chat_id = ? AND id = ?",
            [(chat_id, i) for i in found],
        )
        update = up.DeleteMessages(pts=0, chat_id=chat_id, message_ids=found, for_everyone=True)
        # Only members who could see any of them hear of it (newcomers never saw them).
        viewers = [r[0] for r in conn.execute(
            "SELECT user_id FROM members WHERE chat_id = ? AND (history_from < ? OR user_id = ?)",
            (chat_id, max(found), user_id))]
        push = push_stored(conn, update, viewers, chat_id)
    else:
        conn.executemany(
            "INSERT OR IGNORE INTO hidden_messages (user_id, chat_id, message_id) VALUES (?, ?, ?)",
            [(user_id, chat_id, i) for i in found],
        )
        update = up.DeleteMessages(pts=0, chat_id=chat_id, message_ids=found, for_everyone=False)
        push = push_stored(conn, update, [user_id], chat_id)
    own = next(p for uid, p in push.targets if uid == user_id)
    return own, len(found), [push]


def _q_history(
    conn: sqlite3.Connection, user_id: int, chat_id: int, before_id: int | None, limit: int
) -> list[Message]:
    history_from = membership(conn, user_id, chat_id).history_from
    return _last_visible(conn, user_id, chat_id, history_from, before_id, limit)


def _tx_read_history(
    conn: sqlite3.Connection, user_id: int, chat_id: int, max_id: int
) -> tuple[int, int, list[Push]]:
    _, _, history_from, read_in, last_id = membership(conn, user_id, chat_id)
    max_id = min(max_id, last_id)
    if max_id <= read_in:
        unread = unread_count(conn, user_id, chat_id, max(read_in, history_from))
        (pts,) = conn.execute("SELECT pts FROM users WHERE id = ?", (user_id,)).fetchone()
        return pts, unread, []
    conn.execute(
        "UPDATE members SET read_inbox_max_id = ? WHERE chat_id = ? AND user_id = ?",
        (max_id, chat_id, user_id),
    )
    unread = unread_count(conn, user_id, chat_id, max(max_id, history_from))
    own = push_stored(conn, up.ReadInbox(pts=0, chat_id=chat_id, max_id=max_id,
                                         unread_count=unread), [user_id], chat_id)
    pushes = [own]
    pushes += _tell_authors(conn, user_id, chat_id, read_in, max_id)
    return own.targets[0][1], unread, pushes


def _tell_authors(
    conn: sqlite3.Connection, reader_id: int, chat_id: int, old_max: int, new_max: int
) -> list[Push]:
    """ReadOutbox to the authors (still in the chat) of the messages just read."""
    authors = [r[0] for r in conn.execute(
        "SELECT DISTINCT m.sender_id FROM messages m JOIN members mb ON mb.chat_id = m.chat_id "
        "AND mb.user_id = m.sender_id WHERE m.chat_id = ? AND m.id > ? AND m.id <= ? "
        "AND m.sender_id != ? AND mb.read_outbox_max_id < ?",
        (chat_id, old_max, new_max, reader_id, new_max),
    )]
    if not authors:
        return []
    marks = ",".join("?" * len(authors))
    conn.execute(
        f"UPDATE members SET read_outbox_max_id = ? WHERE chat_id = ? AND user_id IN ({marks})",
        (new_max, chat_id, *authors),
    )
    return [push_stored(conn, up.ReadOutbox(pts=0, chat_id=chat_id, max_id=new_max), authors,
                        chat_id)]


# -- updates ----------------------------------------------------------------------------------
def _q_state(conn: sqlite3.Connection, user_id: int) -> State:
    row = conn.execute("SELECT pts FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")
    return State(pts=row[0], date=0.0)


def _q_difference(conn: sqlite3.Connection, user_id: int, pts: int, limit: int) -> Difference:
    state = _q_state(conn, user_id)
    rows = conn.execute(
        f"SELECT u.pts, u.kind, u.data, {', '.join('m.' + c.strip() for c in MSG_COLS.split(','))} "
        "FROM updates u LEFT JOIN messages m ON u.kind IN (1, 2) AND m.chat_id = u.chat_id "
        "AND m.id = u.message_id WHERE u.user_id = ? AND u.pts > ? ORDER BY u.pts LIMIT ?",
        (user_id, pts, limit),
    ).fetchall()
    updates: list[up.AnyUpdate] = []
    for row in rows:
        upts, kind = row[0], row[1]
        if kind == STORED:
            updates.append(msgspec.structs.replace(update_decoder.decode(row[2]), pts=upts))
        else:
            message = message_row(row[3:])
            cls = up.NewMessage if kind == NEW else up.EditMessage
            updates.append(cls(pts=upts, message=message))
    last = rows[-1][0] if rows else pts
    more = last < state.pts
    return Difference(updates=updates, state=State(pts=last if more else state.pts, date=0.0),
                      more=more)
