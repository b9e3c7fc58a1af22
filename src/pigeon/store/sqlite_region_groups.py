"""Groups spanning regions (SQLite operations, run by both engines; docs/architecture.md,
"Groups across regions").

A group lives in its creator's region, which alone writes it: its members, its rules, its
message ids. Each other region with members keeps a *replica* (the chat row with the same
id, ``home_region`` set; the members; the messages, with the same ids), written only by
applying, in stream order and once, what the group's region queues here in the transaction
of each change (``group_regions`` lists the regions to tell). Everything a member homed in
a replica's region does to the group is forwarded to the group's region and comes back this
way (server/region_groups.py), so both copies run the same rules on the same rows.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pigeon.protocol.errors import InvalidArgument, NotFound
from pigeon.protocol.media import Media
from pigeon.protocol.regions import (
    GROUP_PART,
    CrossFile,
    CrossGroup,
    CrossGroupDelete,
    CrossGroupEdit,
    CrossGroupMessage,
    CrossGroupRead,
    GroupCross,
    GroupMember,
    MessageRef,
    RemoteUser,
    media_in,
)
from pigeon.protocol.types import FwdFrom, Message, MessageSticker

from .base import Push
from .sqlite_log import announce
from .sqlite_region_events import edit_once
from .sqlite_regions import _keep_files, _tx_remember_remote, enqueue, keep_files, message_body
from .sqlite_rows import chunks, insert_members, marks, message

_MEMBER = ("SELECT u.id, u.name, u.username, u.home_region, m.role, m.joined, m.history_from "
           "FROM members m JOIN users u ON u.id = m.user_id WHERE m.chat_id = ?")


def _regions(conn: sqlite3.Connection, chat_id: int) -> list[str]:
    """The other regions with a replica of this group (none: the usual case, one read)."""
    return [r[0] for r in conn.execute(
        "SELECT region FROM group_regions WHERE chat_id = ? ORDER BY region", (chat_id,))]


# -- in the group's region: queued in the change's own transaction --------------------------------
def ship_state(conn: sqlite3.Connection, chat_id: int, actor_id: int, changed: list[int],
               left: list[int], now: float) -> None:
    """The group changed (``changed``: members who joined or whose role changed; ``left``:
    who left): tell every region with a replica, and give a region that just got its first
    member every member (an end-to-end encrypted group too: its replica is made secret, its
    messages carry their ciphertext; docs/architecture.md, "Secret chats across regions")."""
    before = _regions(conn, chat_id)
    homes: set[str] = set()
    for chunk in chunks(changed):
        homes.update(r[0] for r in conn.execute(
            f"SELECT DISTINCT home_region FROM users WHERE id IN ({marks(chunk)}) "
            "AND home_region IS NOT NULL", chunk))
    new = sorted(homes - set(before))
    if not before and not new:
        return
    row = conn.execute("SELECT kind, title, created, member_count, last_message_id, secret, "
                       "home_region FROM chats WHERE id = ?", (chat_id,)).fetchone()
    if row[6] is not None:
        return  # a replica: written by its group's region only (callers forward)
    header = {"kind": row[0], "title": row[1], "created": row[2], "member_count": row[3],
              "last_message_id": row[4], "secret": bool(row[5])}
    if before:
        named = _members(conn, chat_id, changed)
        for part in _parts(named, left):
            for region in before:
                enqueue(conn, region, "group", actor_id, chat_id, 0, "", now, {**header, **part})
    if new:
        everyone = _members(conn, chat_id, None)
        for region in new:
            conn.execute("INSERT INTO group_regions (chat_id, region) VALUES (?, ?)",
                         (chat_id, region))
            for n, part in enumerate(_parts(everyone, [])):
                enqueue(conn, region, "group", actor_id, chat_id, 0, "", now,
                        {**header, **part, "reset": n == 0})
    # a region just told that its last member left keeps its replica, unfed
    for region in before if left else []:
        if conn.execute("SELECT 1 FROM members m JOIN users u ON u.id = m.user_id "
                        "WHERE m.chat_id = ? AND u.home_region = ? LIMIT 1",
                        (chat_id, region)).fetchone() is None:
            conn.execute("DELETE FROM group_regions WHERE chat_id = ? AND region = ?",
                         (chat_id, region))


def _members(conn: sqlite3.Connection, chat_id: int, ids: list[int] | None) -> list[Any]:
    if ids is None:
        rows = conn.execute(f"{_MEMBER} ORDER BY m.joined, m.user_id", (chat_id,)).fetchall()
    else:
        rows = []
        for chunk in chunks(ids):
            rows += conn.execute(f"{_MEMBER} AND m.user_id IN ({marks(chunk)})",
                                 (chat_id, *chunk)).fetchall()
    # ``home`` None: homed in the group's region (the receiver knows it as the stream's origin)
    return [{"user": {"id": r[0], "name": r[1], "username": r[2]}, "home": r[3], "role": r[4],
             "joined": r[5], "history_from": r[6]} for r in rows]


def _parts(named: list[Any], left: list[int]) -> list[dict[str, Any]]:
    """The changes, GROUP_PART members at a time (at least one part: a title alone too)."""
    parts = [{"joined": named[i:i + GROUP_PART], "left": []}
             for i in range(0, len(named), GROUP_PART)] or [{"joined": [], "left": []}]
    parts[-1]["left"] = left[:GROUP_PART]
    parts += [{"joined": [], "left": left[i:i + GROUP_PART]}
              for i in range(GROUP_PART, len(left), GROUP_PART)]
    return parts


def ship_message(conn: sqlite3.Connection, chat_id: int, message_id: int, sender_id: int,
                 random_id: int, text: str, date: float, fwd_from: FwdFrom | None,
                 reply_to: int | None, media: Media | None,
                 sticker: MessageSticker | None, ciphertext: bytes | None = None) -> None:
    """A new message of a group with replicas, to every region with one (with its id
    here)."""
    regions = _regions(conn, chat_id)
    conn.execute("INSERT INTO crossed_messages (chat_id, message_id, sender_id, random_id) "
                 "VALUES (?, ?, ?, ?)", (chat_id, message_id, sender_id, random_id))
    body = {**message_body(conn, chat_id, fwd_from, reply_to, media, sticker),
            "message_id": message_id}
    if ciphertext is not None:
        body["ciphertext"] = ciphertext
    for region in regions:
        enqueue(conn, region, "group_message", sender_id, chat_id, random_id, text, date, body)


def ship_edit(conn: sqlite3.Connection, chat_id: int, message_id: int, editor_id: int,
              text: str, date: float) -> None:
    regions = _regions(conn, chat_id)
    if not regions:
        return
    row = conn.execute("SELECT random_id FROM crossed_messages WHERE chat_id = ? "
                       "AND message_id = ?", (chat_id, message_id)).fetchone()
    for region in regions if row is not None else []:
        enqueue(conn, region, "group_edit", editor_id, chat_id, row[0], text, date)


def ship_delete(conn: sqlite3.Connection, chat_id: int, message_ids: list[int], actor_id: int,
                date: float) -> None:
    regions = _regions(conn, chat_id)
    refs: list[list[int]] = []
    for chunk in chunks(message_ids) if regions else []:
        refs += [[r[0], r[1]] for r in conn.execute(
            "SELECT sender_id, random_id FROM crossed_messages WHERE chat_id = ? "
            f"AND message_id IN ({marks(chunk)}) ORDER BY message_id", (chat_id, *chunk))]
    for region in regions if refs else []:
        enqueue(conn, region, "group_delete", actor_id, chat_id, 0, "", date,
                {"messages": refs})


def ship_read(conn: sqlite3.Connection, reader_id: int, chat_id: int, told: int, date: float,
              came_from: str | None) -> None:
    """A read mark that tells the authors: the authors homed elsewhere are told by their
    regions. From a replica's region to the group's region (which alone knows the others),
    from there to every region with members but the one it came from."""
    row = conn.execute("SELECT home_region FROM chats WHERE id = ?", (chat_id,)).fetchone()
    if row is not None and row[0] is not None:
        regions = [] if came_from is not None else [row[0]]
    else:
        regions = [r for r in _regions(conn, chat_id) if r != came_from]
    for region in regions:
        enqueue(conn, region, "group_read", reader_id, chat_id, 0, "", date,
                {"message_id": told})


# -- in a replica's region: applied in stream order, once ----------------------------------------
def apply_group(conn: sqlite3.Connection, event: GroupCross, now: float,
                here: str = "") -> list[Push]:
    """What the group's region shipped, into this region's replica of the group: pushes for
    the members homed here (``here``: this region's name, if known). NotFound /
    InvalidArgument: skipped (logged by the caller)."""
    from .sqlite_messages import (  # noqa: PLC0415  (it imports this module)
        _tx_delete_messages,
        _tx_read_history,
        _tx_send_message,
    )

    chat_id = event.recipient_id
    if isinstance(event, CrossGroup):
        return _apply_state(conn, event, now, here)
    if isinstance(event, CrossGroupRead):  # here the group's region, or a replica of it
        _check_reader(conn, event)
        return _tx_read_history(conn, event.sender.id, chat_id, event.message_id,
                                crossing=True, came_from=event.origin)[2]
    _replica(conn, chat_id, event.origin)
    actor = event.sender.id
    home = conn.execute("SELECT home_region FROM users WHERE id = ?", (actor,)).fetchone()
    if home is not None and home[0] is not None:  # homed elsewhere: its name as it is now
        _tx_remember_remote(conn, event.sender, home[0], now)
    if isinstance(event, CrossGroupMessage):
        _keep_files(conn, event, now)
        reply = (_located(conn, chat_id, event.reply_to)
                 if event.reply_to is not None else None)
        if reply is not None and (message(conn, chat_id, reply) is None):
            reply = None
        return _tx_send_message(conn, actor, chat_id, event.random_id, event.text, event.date,
                                reply, event.fwd_from, sticker=event.sticker,
                                media=event.media, from_region=True,
                                message_id=event.message_id,
                                ciphertext=event.ciphertext)[2]
    if isinstance(event, CrossGroupEdit):
        message_id = _located(conn, chat_id, MessageRef(actor, event.random_id))
        if message_id is None:
            raise NotFound("the edited message is not in this replica", code="MESSAGE_NOT_FOUND")
        return edit_once(conn, actor, chat_id, message_id, event)
    assert isinstance(event, CrossGroupDelete)
    ids = [i for i in (_located(conn, chat_id, ref) for ref in event.messages) if i is not None]
    return (_tx_delete_messages(conn, actor, chat_id, ids, True, from_region=True)[2]
            if ids else [])


def _check_reader(conn: sqlite3.Connection, event: CrossGroupRead) -> None:
    """A read mark comes to the group's region from the reader's region, and to a replica
    from the group's region, for a reader homed elsewhere; NotFound (skipped) otherwise."""
    chat = conn.execute("SELECT home_region FROM chats WHERE id = ?",
                        (event.recipient_id,)).fetchone()
    reader = conn.execute("SELECT home_region FROM users WHERE id = ?",
                          (event.sender.id,)).fetchone()
    if (chat is None or reader is None or reader[0] is None
            or (reader[0] if chat[0] is None else chat[0]) != event.origin):
        raise NotFound("no such reader of this group from there", code="MESSAGE_NOT_FOUND")


def _replica(conn: sqlite3.Connection, chat_id: int, origin: str) -> str | None:
    """This region's replica of ``origin``'s group ``chat_id`` (None: not made yet);
    InvalidArgument if the id is a chat of another kind here (a chat made here before chat
    ids were ranged per region: docs/architecture.md)."""
    row = conn.execute("SELECT home_region FROM chats WHERE id = ?", (chat_id,)).fetchone()
    if row is not None and row[0] != origin:
        raise InvalidArgument(f"chat {chat_id} is not {origin}'s group here",
                              code="NOT_SUPPORTED_ACROSS_REGIONS")
    return None if row is None else str(row[0])


def _located(conn: sqlite3.Connection, chat_id: int, ref: MessageRef) -> int | None:
    row = conn.execute("SELECT message_id FROM random_ids WHERE sender_id = ? AND random_id = ? "
                       "AND chat_id = ?", (ref.sender_id, ref.random_id, chat_id)).fetchone()
    return None if row is None else int(row[0])


def _apply_state(conn: sqlite3.Connection, event: CrossGroup, now: float,
                 here: str) -> list[Push]:
    from .sqlite_groups import depart  # noqa: PLC0415  (it imports this module)

    chat_id = event.recipient_id
    if _replica(conn, chat_id, event.origin) is None:
        conn.execute("INSERT INTO chats (id, kind, title, created, home_region, secret) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     (chat_id, event.kind, event.title, event.created, event.origin,
                      int(event.secret)))
    conn.execute("UPDATE chats SET title = ?, last_message_id = MAX(last_message_id, ?) "
                 "WHERE id = ?", (event.title, event.last_message_id, chat_id))
    current = {r[0]: r[1] for r in conn.execute(
        "SELECT user_id, history_from FROM members WHERE chat_id = ?", (chat_id,))}
    stale: list[int] = []
    if event.reset:  # every member, anew: whoever else is here missed their leaving
        conn.execute("DELETE FROM members WHERE chat_id = ? AND user_id IN (SELECT id FROM "
                     "users WHERE home_region IS NOT NULL)", (chat_id,))
        named = {m.user.id for m in event.joined}
        stale = [uid for uid in current if uid not in named and uid not in event.left]
        current = {r[0]: r[1] for r in conn.execute(
            "SELECT user_id, history_from FROM members WHERE chat_id = ?", (chat_id,))}
        stale = [uid for uid in stale if uid in current]  # homed here: told they left
    changed: list[int] = []
    for member in event.joined:
        _make_known(conn, member, event.origin, now, here)
        uid = member.user.id
        changed.append(uid)
        if uid in current:
            conn.execute("UPDATE members SET role = ? WHERE chat_id = ? AND user_id = ?",
                         (member.role, chat_id, uid))
        else:
            insert_members(conn, chat_id, [uid], member.role, member.joined, member.history_from)
    departed = [uid for uid in (*event.left, *stale) if uid in current]
    for uid in departed:
        depart(conn, chat_id, uid, current[uid], now)
    conn.execute("UPDATE chats SET member_count = ? WHERE id = ?", (event.member_count, chat_id))
    return announce(conn, chat_id, departed=departed, affected=changed, now=now)


def _make_known(conn: sqlite3.Connection, member: GroupMember, origin: str, now: float,
                here: str) -> None:
    """``member``'s row here: one homed here is never touched, and must be said to be homed
    here (else InvalidArgument: the group's region may not make one of this region's people
    a member as someone else's); one homed elsewhere (in the group's region, or a third) is
    kept, or refreshed, as a remote row."""
    row = conn.execute("SELECT home_region FROM users WHERE id = ?",
                       (member.user.id,)).fetchone()
    if row is not None and row[0] is None:
        if member.home is None or (here and member.home != here):
            raise InvalidArgument(f"user {member.user.id} is homed here, not in "
                                  f"{member.home or origin}")
    else:
        _tx_remember_remote(conn, RemoteUser(id=member.user.id, name=member.user.name,
                                             username=member.user.username),
                            member.home or origin, now)


def group_home(conn: sqlite3.Connection, chat_id: int) -> str | None:
    """The region a chat lives in if not here (a replica's group), "" for a chat of this
    region, None for no such chat."""
    row = conn.execute("SELECT home_region FROM chats WHERE id = ?", (chat_id,)).fetchone()
    return None if row is None else str(row[0] or "")


def _q_people(conn: sqlite3.Connection, ids: list[int]) -> list[RemoteUser]:
    """Of these accounts, those homed here, as another region keeps them."""
    out: list[RemoteUser] = []
    for chunk in chunks(ids):
        out += [RemoteUser(id=r[0], name=r[1], username=r[2], who_can_add=r[3])
                for r in conn.execute(
                    f"SELECT id, name, username, who_can_add FROM users WHERE id IN "
                    f"({marks(chunk)}) AND home_region IS NULL", chunk)]
    return out


def check_invitable(conn: sqlite3.Connection, user_ids: list[int]) -> None:
    """An invitation lives in the group's region, where someone homed elsewhere would never
    see it: refused for them (their privacy asks for one)."""
    for chunk in chunks(user_ids):
        row = conn.execute(f"SELECT id FROM users WHERE id IN ({marks(chunk)}) "
                           "AND home_region IS NOT NULL LIMIT 1", chunk).fetchone()
        if row is not None:
            raise InvalidArgument(
                f"user {row[0]} only joins groups by invitation, and an invitation does not "
                "reach another region yet", code="NOT_SUPPORTED_ACROSS_REGIONS")


def _tx_send_carried(conn: sqlite3.Connection, sender_id: int, chat_id: int, random_id: int,
                     text: str, now: float, reply_to: int | None, files: list[CrossFile],
                     sticker: MessageSticker | None) -> tuple[Message, int, list[Push]]:
    from .sqlite_messages import _tx_send_message  # noqa: PLC0415  (it imports this module)

    keep_files(conn, sender_id, files, sticker, now)
    return _tx_send_message(conn, sender_id, chat_id, random_id, text, now, reply_to, None,
                            sticker=sticker, media=media_in(files))
