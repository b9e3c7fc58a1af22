"""Blocks and abuse reports (issue 11): pure rules every store backend calls inside the
transaction, with the rows it read.

A block is one-sided and silent. Once Bob blocks Alice, her private messages to him are
stored (she sees them as sent, as before) but hidden from him and pushed to nobody but her,
and her attempts to add him to a group answer as if he had been invited. She is never told:
telling her would invite her to try from another account. Group messages are not filtered:
the group's other members see them, and hiding one member's words from one reader would make
the conversation unreadable (as in Telegram and Signal, where a blocked member's group
messages still show).
"""

from __future__ import annotations

from typing import NamedTuple

from pigeon.protocol.errors import Conflict, InvalidArgument

from .people import no_such_user

# What one account may hold or do; generous for a person, small for a script.
MAX_BLOCKED = 10_000
MAX_REPORTS_PER_DAY = 50
REPORT_WINDOW = 86400.0


class BlockPolicy(NamedTuple):
    max_blocked: int = MAX_BLOCKED
    max_reports_per_day: int = MAX_REPORTS_PER_DAY


DEFAULT_POLICY = BlockPolicy()


def check_block(user_id: int, peer_id: int, peer_visible: bool, blocked_count: int,
                policy: BlockPolicy = DEFAULT_POLICY) -> None:
    """Whether ``user_id`` may block ``peer_id``: someone they may see (anyone who wrote to
    them or invited them is), not oneself, within the account's bound. Those they may not see
    answer as ids that do not exist (:func:`pigeon.domain.people.no_such_user`)."""
    if peer_id == user_id:
        raise Conflict("you cannot block yourself", code="PEER_IS_SELF")
    if not peer_visible:
        raise no_such_user(peer_id)
    if blocked_count >= policy.max_blocked:
        raise Conflict(f"you blocked {blocked_count} people, the most one account may block",
                       code="QUOTA_EXCEEDED")


def silenced(recipient_blocked_sender: bool) -> bool:
    """Whether a private message is kept from its recipient (stored, hidden, not pushed)."""
    return recipient_blocked_sender


def split_blocked(user_ids: list[int], blocked_adder: set[int]) -> tuple[list[int], list[int]]:
    """Of the people an adder names, (those who may be asked, those who blocked the adder).
    The second answer as invited, and nothing is stored for them."""
    return ([u for u in user_ids if u not in blocked_adder],
            [u for u in user_ids if u in blocked_adder])


def validate_reason(reason: str) -> str:
    """A report's reason: free text on one or more lines, no other control characters."""
    text = reason.strip()
    if any(not ch.isprintable() and ch != "\n" for ch in text):
        raise InvalidArgument("a report's reason may not hold control characters",
                              code="TEXT_INVALID")
    return text


def report_window_start(now: float) -> float:
    return now - REPORT_WINDOW


def check_report(reporter_id: int, sender_id: int, reports_today: int,
                 policy: BlockPolicy = DEFAULT_POLICY) -> None:
    """Whether a report may be filed: not of one's own message, within the day's bound."""
    if sender_id == reporter_id:
        raise Conflict("that message is your own", code="PEER_IS_SELF")
    if reports_today >= policy.max_reports_per_day:
        raise Conflict(f"you filed {reports_today} reports in the last 24 hours, the most "
                       "allowed; try again later", code="QUOTA_EXCEEDED")
