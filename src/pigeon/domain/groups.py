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
``Store.visible_users``; "not found" is the same USER_NOT_FOUND as for an id that does not
exist, so that adding cannot be used to learn who exists.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Admission = Literal["add", "invite", "refuse", "unknown"]
WHO_CAN_ADD = ("everyone", "contacts", "nobody")


class GroupPolicy(NamedTuple):
    """The server's rules for joining groups (settings; docs/operations.md). The store applies
    them inside the transaction that adds members, so a check and its write stay atomic."""

    default_who_can_add: str = "contacts"   # for accounts that never chose (WhoCanAdd)
    max_groups_joined: int = 500            # groups one account is in
    max_groups_created_per_day: int = 50    # groups one account creates in any 24 hours
    max_pending_invitations: int = 100      # invitations waiting for one account


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
