"""Who joins a group, and how: pure rules that every store backend calls inside the
transaction that adds members, with the rows it read (so a check and its write stay atomic).

Issue 7, finding 6: anyone could add anyone to a group. Now each person's ``who_can_add``
setting decides, as Telegram's "who can add me to group chats" does:

============  ================================  ==============================  ============
setting       someone who wrote to the adder     anyone else the adder can see   the others
============  ================================  ==============================  ============
everyone      added                              added                           added
contacts      added                              invited (they accept/decline)   not found
nobody        invited                            refused                         not found
============  ================================  ==============================  ============

"Wrote to the adder" means: sent them a message in a private chat. A private chat alone is
not enough, because either side opens one without the other's consent. "Can see" is
:func:`pigeon.domain.people.may_see`; "not found" is the same USER_NOT_FOUND as for an id
that does not exist, so that adding cannot be used to learn who exists.

Quotas hold only under a :class:`GroupPolicy` (the server always passes one): groups one
account is in, groups it created in any 24 hours, invitations waiting for one account; and a
group holds at most the server's ``max_group_members``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Literal, NamedTuple

from pigeon.protocol.errors import Conflict, Forbidden, NotFound

from .people import no_such_user
from .streams import LARGE_CHAT_KIND

Admission = Literal["add", "invite", "refuse", "unknown"]
WHO_CAN_ADD = ("everyone", "contacts", "nobody")


class GroupPolicy(NamedTuple):
    """The server's rules for joining groups (settings; docs/operations.md). The store applies
    them inside the transaction that adds members, so a check and its write stay atomic."""

    default_who_can_add: str = "contacts"   # for accounts that never chose (WhoCanAdd)
    max_groups_joined: int = 500            # groups one account is in
    max_groups_created_per_day: int = 50    # groups one account creates in any 24 hours
    max_pending_invitations: int = 100      # invitations waiting for one account
    max_supergroup_members: int = 200_000   # members of one very large group (supergroup)


def admission(who_can_add: str, wrote_to_adder: bool, adder_sees_them: bool) -> Admission:
    """How one person may enter a group that someone else adds them to."""
    if who_can_add == "everyone":
        return "add"
    if who_can_add == "contacts":
        if wrote_to_adder:
            return "add"
        return "invite" if adder_sees_them else "unknown"
    if wrote_to_adder:  # "nobody": only people they talk to may even ask
        return "invite"
    return "refuse" if adder_sees_them else "unknown"


def needs_sight(who_can_add: str, wrote_to_adder: bool) -> bool:
    """Whether :func:`admission` depends on the adder seeing this person: a backend asks
    only about those (the question costs a look at their groups)."""
    return who_can_add != "everyone" and not wrote_to_adder


def sort_newcomers(
    user_ids: Iterable[int], who_can_add: Mapping[int, str], wrote_to_adder: AbstractSet[int],
    adder_sees: AbstractSet[int],
) -> tuple[list[int], list[int]]:
    """Split the people an adder names into (added now, invited), by each one's setting
    (``who_can_add``, the server's default filled in), whether they wrote to the adder, and
    whether the adder sees them; refuse at the first who may not be asked at all."""
    added: list[int] = []
    invited: list[int] = []
    for uid in user_ids:
        verdict = admission(who_can_add[uid], uid in wrote_to_adder, uid in adder_sees)
        if verdict == "unknown":
            raise no_such_user(uid)
        if verdict == "refuse":
            raise Forbidden(f"user {uid} does not accept group invitations from you",
                            code="USER_PRIVACY_RESTRICTED")
        (added if verdict == "add" else invited).append(uid)
    return added, invited


def founders(owner_id: int, named: Iterable[int]) -> list[int]:
    """The people a new group is created with, besides its owner (named once each)."""
    return sorted(set(named) - {owner_id})


def newcomers(named: Iterable[int], present: AbstractSet[int]) -> list[int]:
    """The people named to be added who are not members yet; ALREADY_MEMBER if none."""
    new = sorted(set(named) - present)
    if not new:
        raise already_members()
    return new


def already_members(invited_too: bool = False) -> Conflict:
    if invited_too:
        return Conflict("every one of them is already a member or invited",
                        code="ALREADY_MEMBER")
    return Conflict("every one of them is already a member", code="ALREADY_MEMBER")


def group_kind(large: bool) -> str:
    return LARGE_CHAT_KIND if large else "group"


def member_limit(kind: str, max_members: int, policy: GroupPolicy | None) -> int:
    """How many members a chat of ``kind`` holds: the server's setting for very large groups
    (when the caller gave its policy), ``max_members`` for the others."""
    if kind == LARGE_CHAT_KIND and policy is not None:
        return policy.max_supergroup_members
    return max_members


def check_capacity(member_count: int, joining: int, max_members: int) -> None:
    if member_count + joining > max_members:
        raise Conflict(f"a group holds at most {max_members} members", code="GROUP_FULL")


# -- quotas (only with a policy: the store's own tests add without one) -------------------------
CREATION_WINDOW = 86400.0
"""The groups-created quota counts the groups created in the last this many seconds."""


def creation_window_start(now: float) -> float:
    return now - CREATION_WINDOW


def check_created(created_recently: int, policy: GroupPolicy | None) -> None:
    """``created_recently``: groups the account created since :func:`creation_window_start`."""
    if policy is not None and created_recently >= policy.max_groups_created_per_day:
        raise Conflict(f"you created {created_recently} groups in the last 24 hours, the most "
                       "allowed; try again later", code="QUOTA_EXCEEDED")


def check_joined(groups_joined: Iterable[tuple[int, int]], policy: GroupPolicy | None) -> None:
    """``groups_joined``: (user, how many groups they are in) of those about to join one."""
    if policy is None:
        return
    for uid, count in groups_joined:
        if count >= policy.max_groups_joined:
            raise Conflict(f"user {uid} is in {policy.max_groups_joined} groups, the most "
                           "one account may be in", code="QUOTA_EXCEEDED")


def fresh_invitees(user_ids: Iterable[int], pending: AbstractSet[int]) -> list[int]:
    """Of those to invite, the ones not already invited to this group (in the order given)."""
    return [uid for uid in user_ids if uid not in pending]


def check_pending(pending_counts: Iterable[tuple[int, int]], policy: GroupPolicy | None) -> None:
    """``pending_counts``: (user, invitations waiting for them) of those about to be invited."""
    if policy is None:
        return
    for uid, count in pending_counts:
        if count >= policy.max_pending_invitations:
            raise Conflict(f"user {uid} has too many invitations waiting",
                           code="QUOTA_EXCEEDED")


def no_invitation(chat_id: int) -> NotFound:
    return NotFound(f"you have no invitation to chat {chat_id}", code="INVITATION_NOT_FOUND")
