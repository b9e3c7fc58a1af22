"""Who may see whom (users.get, adding to groups), and the answer for those one may not see.

A user may see: themself, anyone they found by username or phone, anyone who wrote to them in
a private chat, anyone who invited them to a group, and anyone they share a group with. The
others are left out, exactly as ids that do not exist (issue 7, finding 18: ids 1-100 once
listed every account), so that nobody learns who exists by probing.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import NamedTuple

from pigeon.protocol.errors import NotFound


class Ties(NamedTuple):
    """What links a viewer to another user, as a backend found it."""

    is_self: bool = False
    found_them: bool = False       # the viewer found them by username or phone
    wrote_to_viewer: bool = False  # they sent the viewer a message in a private chat
    invited_viewer: bool = False   # they invited the viewer to a group
    share_group: bool = False      # they and the viewer are in a group together


def may_see(ties: Ties) -> bool:
    return any(ties)


def no_such_user(user_id: int) -> NotFound:
    """One answer for "no such user" and "not one you can see"."""
    return NotFound(f"no user with id {user_id}", code="USER_NOT_FOUND")


def require_known(named: Iterable[int], existing: AbstractSet[int]) -> None:
    """USER_NOT_FOUND for the first of ``named`` not among ``existing``."""
    for user_id in named:
        if user_id not in existing:
            raise no_such_user(user_id)


def remembers_discovery(user_id: int, peer_id: int) -> bool:
    """Finding someone by username or phone lets one see them from then on; finding oneself
    changes nothing."""
    return user_id != peer_id


def makes_contact(chat_kind: str) -> bool:
    """Whether sending in a chat of this kind makes the sender a "contact" of the other side
    (``who_can_add`` = "contacts"): a message in a private chat does. A private chat alone
    does not, since either side opens one without the other's consent."""
    return chat_kind == "private"
