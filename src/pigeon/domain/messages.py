"""Messages: what a member may see, answer, edit and delete; read marks.

A member sees the messages of a chat that came after they joined (``history_from``) and are
not deleted; what they deleted for themselves is gone from their history too. One can only
answer, edit, forward or delete what one sees; a forward names the first origin. Only the
author edits a message. Deleting for everyone: in a private chat either side may retract any
message; in a group, one's own, or anyone's for the owner and admins. Sending reads everything
before it, as every messenger does; whoever reads tells the authors of what they read (a
ReadOutbox each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pigeon.protocol.errors import Conflict, Forbidden, NotFound
from pigeon.protocol.types import FwdFrom, Message

from .membership import is_group
from .records import Standing
from .streams import on_chat_stream


def visible(message: Message | None, history_from: int) -> bool:
    """Whether a member whose history starts after ``history_from`` sees ``message``."""
    return message is not None and message.id > history_from and not message.deleted


def in_history(message: Message, history_from: int, hidden: bool) -> bool:
    """Whether ``message`` shows in a member's history and dialogs (``hidden``: they
    deleted it for themselves)."""
    return visible(message, history_from) and not hidden


def counts_as_unread(message: Message, reader_id: int, after: int, hidden: bool) -> bool:
    """Whether ``message`` counts in a reader's unread count, ``after`` being
    :func:`unread_after`: only what others wrote. A backend counts this in its query
    language (a count must not load the messages); its definition is this one."""
    return message.id > after and message.sender_id != reader_id and not message.deleted \
        and not hidden


def unread_after(read_inbox_max_id: int, history_from: int) -> int:
    """Unread are the messages after both the read mark and the start of one's history."""
    return max(read_inbox_max_id, history_from)


def no_message(chat_id: int, message_id: int) -> NotFound:
    return NotFound(f"no message {message_id} in chat {chat_id}", code="MESSAGE_NOT_FOUND")


def seen_message(message: Message | None, history_from: int, chat_id: int,
                 message_id: int) -> Message:
    """``message`` (the row of ``message_id``, None if there is none) if the member sees it,
    else MESSAGE_NOT_FOUND: alike for a message that never existed, was deleted, or predates
    them."""
    if message is None or not visible(message, history_from):
        raise no_message(chat_id, message_id)
    return message


def check_replay(first_chat_id: int, chat_id: int) -> None:
    """A resent ``random_id`` returns the message it first made; the same id for a message to
    another chat is a client's bug."""
    if first_chat_id != chat_id:
        raise Conflict("this random_id was used for another message", code="RANDOM_ID_DUPLICATE")


def check_service_rules(*, to_service_chat: bool, forwards_from_service_chat: bool) -> None:
    """The service account (it delivers login codes in the app) takes no messages, and what it
    sent stays where it is: "forward me the code you just got" is how accounts are stolen."""
    if to_service_chat:
        raise Forbidden("the Pigeon service account takes no messages", code="FORBIDDEN")
    if forwards_from_service_chat:
        raise Forbidden("messages from the Pigeon service account cannot be forwarded",
                        code="FORBIDDEN")


def check_reply(target: Message | None, history_from: int, reply_to: int) -> None:
    """One can only answer what one can see: not deleted, not from before one joined."""
    if not visible(target, history_from):
        raise NotFound(f"no message {reply_to} to reply to", code="MESSAGE_NOT_FOUND")


def forward_origin(original: Message) -> FwdFrom:
    """Where a forwarded copy says it came from: the original's author and place, or, for a
    forward of a forward, the first origin (the one who forwards is its sender)."""
    return original.fwd_from or FwdFrom(sender_id=original.sender_id, chat_id=original.chat_id,
                                        message_id=original.id, date=original.date)


def check_edit(message: Message, user_id: int) -> None:
    if message.sender_id != user_id:
        raise Forbidden("you can only edit your own messages", code="NOT_AUTHOR")


def deletable(rows: Iterable[Message], history_from: int) -> list[Message]:
    """The messages among ``rows`` (those asked for) that the member may delete: the ones
    they see, by id."""
    return sorted((m for m in rows if visible(m, history_from)), key=lambda m: m.id)


def check_delete_for_everyone(actor: Standing, user_id: int, messages: Iterable[Message]) -> None:
    if is_group(actor.kind) and actor.role == "member" and any(
            m.sender_id != user_id for m in messages):
        raise Forbidden("only admins can delete others' messages for everyone",
                        code="NOT_ADMIN")


# -- read marks ---------------------------------------------------------------------------------
class Reading(NamedTuple):
    """A read mark moving forward: the reader's new ``mark``; the authors of the messages in
    (``after``, ``told``] learn that the reader read up to ``told``."""

    mark: int
    after: int
    told: int

    @property
    def tells(self) -> bool:
        return self.told > self.after


def read_up_to(standing: Standing, max_id: int) -> Reading | None:
    """Reading a chat up to ``max_id`` (never past its last message); None if the mark would
    not move forward."""
    mark = min(max_id, standing.last_message_id)
    if mark <= standing.read_inbox_max_id:
        return None
    return Reading(mark, standing.read_inbox_max_id, mark)


def read_on_send(standing: Standing, message_id: int) -> Reading:
    """Sending message ``message_id`` reads everything before it: the sender's mark moves to
    their own message, and the authors of what they had not read yet are told."""
    return Reading(message_id, standing.read_inbox_max_id, message_id - 1)


def authors_to_tell(
    authors: Iterable[tuple[int, int | None]], reader_id: int, up_to: int
) -> list[int]:
    """Who gets a ReadOutbox when a reader reads up to ``up_to``: of the authors of the
    messages read (``(sender_id, their read_outbox_max_id)``, None if they left the chat), the
    ones still in the chat, other than the reader, not yet told of this much."""
    told: list[int] = []
    for sender_id, outbox_mark in authors:
        if sender_id != reader_id and outbox_mark is not None and outbox_mark < up_to \
                and sender_id not in told:
            told.append(sender_id)
    return told


def tells_authors(kind: str) -> bool:
    """Whether reading a chat of ``kind`` tells the authors (``read_outbox``). Not in a very
    large group: every read there would write to the many authors it covers, the per-member
    fan-out such a chat exists to avoid (Telegram shows no read receipts there either)."""
    return not on_chat_stream(kind)
