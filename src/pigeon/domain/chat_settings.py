"""Mute and pin (issue 11): a person's own mute of a chat, and the message a chat pins.

A mute is one member's setting, synced to their devices and to no one else; it lasts until
a time (``limits.MAX_DATE`` is for ever) and a time already past means not muted. The pinned
message is the chat's, the same for every member: in a group its owner and admins pin and
unpin it, in a private chat either person. One pins a message one sees (not deleted, not from
before one joined); deleting it for everyone unpins it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pigeon.protocol.types import Message

from . import membership
from .messages import seen_message
from .records import Standing

NOT_MUTED = 0.0


def mute_until(until: float, now: float) -> float:
    """What to store for a mute until ``until``: itself, or not muted when it is past."""
    return until if until > now else NOT_MUTED


def may_pin(actor: Standing) -> None:
    """Pinning and unpinning: any member of a private chat; a group's owner and admins."""
    if actor.kind != "private":
        membership.require_admin(actor.role)


def pinnable(message: Message | None, actor: Standing, chat_id: int, message_id: int) -> int:
    """The id to pin, if the actor sees that message; else MESSAGE_NOT_FOUND (alike for one
    that never was, was deleted, or predates them)."""
    return seen_message(message, actor.history_from, chat_id, message_id).id


def unpinned_by_deletion(pinned_message_id: int, deleted_ids: Iterable[int]) -> bool:
    """Whether deleting ``deleted_ids`` for everyone takes the pinned message away."""
    return pinned_message_id != 0 and pinned_message_id in set(deleted_ids)
