"""Members and roles: who is in a chat, who may add, remove and promote, who inherits a group.

A group has exactly one owner while it has members. Roles, and what each may do:

==========  ======================================================================
role        may
==========  ======================================================================
owner       everything an admin may; change anyone's role; hand the group over
            (promoting someone to owner makes the owner an admin); remove admins
admin       add members, rename the group, remove members (not admins, not the
            owner), delete anyone's message for everyone
member      send, reply, edit and delete their own messages, leave
==========  ======================================================================

Anyone may leave. When the owner leaves, the longest-standing admin inherits the group, or,
if there is none, the longest-standing member (:func:`heir`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound
from pigeon.protocol.types import Role

from .records import MemberRow, Standing
from .streams import LARGE_CHAT_KIND


def not_a_member(chat_id: int) -> Forbidden:
    """One answer, same code and same words, for a chat that does not exist and a chat the
    caller is not in: telling them apart let anyone learn which chat ids exist (issue 7,
    finding 18)."""
    return Forbidden(f"you are not a member of chat {chat_id}", code="NOT_A_MEMBER")


def member(standing: Standing | None, chat_id: int) -> Standing:
    """The caller's standing in the chat, or NOT_A_MEMBER if they have none (or there is no
    such chat)."""
    if standing is None:
        raise not_a_member(chat_id)
    return standing


def written_here(standing: Standing, chat_id: int) -> None:
    """A replica of a group homed in another region is written only by what that region
    ships (issue 12): whatever a member does to it is forwarded there, never done here."""
    if standing.home_region is not None:
        raise InvalidArgument(f"chat {chat_id} lives in region {standing.home_region}: "
                              "the call is done there", code="NOT_SUPPORTED_ACROSS_REGIONS")


def is_group(kind: str) -> bool:
    """A group of either size: the rules of membership and roles are the same."""
    return kind in ("group", LARGE_CHAT_KIND)


def require_group(kind: str) -> None:
    if not is_group(kind):
        raise Forbidden("that is only possible in groups", code="FORBIDDEN")


def require_admin(role: Role) -> None:
    if role not in ("owner", "admin"):
        raise Forbidden("only the group's owner and admins can do that", code="NOT_ADMIN")


def may_manage(actor: Standing) -> None:
    """Adding members and renaming: the group's owner and admins."""
    require_group(actor.kind)
    require_admin(actor.role)


def private_members(user_id: int, peer_id: int) -> tuple[int, ...]:
    """The members of a private chat, in the order that keys it (one chat per pair; a chat
    with oneself has one member)."""
    return tuple(sorted({user_id, peer_id}))


def newcomer_history_from(last_message_id: int) -> int:
    """A newcomer sees the group from the moment they join, not its earlier history."""
    return last_message_id


class Removal(NamedTuple):
    """What removing a member (or leaving) does."""

    user_id: int
    history_from: int    # where the departing member's view of the chat began
    owner_leaves: bool   # the owner left: the group passes to :func:`heir`


def removal(actor_id: int, actor: Standing, user_id: int, target: MemberRow | None) -> Removal:
    """``actor_id`` removes ``user_id`` (themself: they leave). ``target`` is ``user_id``'s
    row, None if they are not in the group (only read when they are someone else)."""
    require_group(actor.kind)
    if user_id == actor_id:
        return Removal(user_id, actor.history_from, actor.role == "owner")
    require_admin(actor.role)
    if target is None:
        raise NotFound(f"user {user_id} is not in this group", code="USER_NOT_FOUND")
    if target.role == "owner" or (target.role == "admin" and actor.role != "owner"):
        raise Forbidden("only the owner can remove an admin", code="NOT_ADMIN")
    return Removal(user_id, target.history_from, False)


def seniority(row: MemberRow) -> tuple[float, int]:
    """Who has been in the group longest comes first (the members list's order too)."""
    return (row.joined, row.user_id)


def heir(remaining: Iterable[MemberRow]) -> MemberRow | None:
    """Who inherits a group whose owner left: the longest-standing admin, else the longest-
    standing member; None if nobody is left. ``remaining`` may be every member left, or only
    the most senior of each role: the answer is the same."""
    best: MemberRow | None = None
    for row in remaining:
        if row.role == "owner":
            continue
        if best is None or _heir_key(row) < _heir_key(best):
            best = row
    return best


def _heir_key(row: MemberRow) -> tuple[bool, float, int]:
    return (row.role != "admin", *seniority(row))


def role_changes(
    actor_id: int, actor: Standing, user_id: int, target: MemberRow | None, role: Role
) -> list[tuple[int, Role]]:
    """The roles to write when ``actor_id`` gives ``user_id`` (whose row is ``target``, None if
    they are not in the group) the role ``role``: only the owner changes roles, and making
    someone else owner hands the group over (the old owner stays, as an admin)."""
    require_group(actor.kind)
    if actor.role != "owner":
        raise Forbidden("only the owner can change roles", code="NOT_ADMIN")
    if target is None:
        raise NotFound(f"user {user_id} is not in this group", code="USER_NOT_FOUND")
    if user_id == actor_id:
        raise Conflict("the owner hands ownership to someone else", code="PEER_IS_SELF")
    changes: list[tuple[int, Role]] = [(user_id, role)]
    if role == "owner":
        changes.append((actor_id, "admin"))
    return changes
