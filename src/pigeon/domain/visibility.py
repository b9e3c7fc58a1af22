"""What a message update may show its recipient: a rule every backend applies alike.

The update log refers to message rows instead of copying them (a group message is one row,
not one copy per member). The live row is what a current member is entitled to; someone who
left the group, or was removed, or has since rejoined with a later ``history_from``, is
entitled to the message as it stood when they left, and never to an edit made after that
(issue 7, finding 1).

Each chat counts its edits; a message keeps the count of its own last edit, and a departure
keeps the chat's count at the moment the member left. The live row is still what they saw if
its last edit came no later than their departure. When that is not known to be so, the
update keeps its place in the sequence (a client needs every pts) but carries a tombstone,
the shape that a message deleted for everyone already has.
"""

from __future__ import annotations

from collections.abc import Iterable

from pigeon.protocol.types import Message

from .records import Departure


def entitled_message(
    live: Message, edit_seq: int, *, member_sees: bool, departed_edit_seq: int | None
) -> Message:
    """The message an update of the log shows its recipient.

    ``live``: the message row now; ``edit_seq``: the chat's edit count at its last edit
    (0: never edited since edits were counted); ``member_sees``: the recipient is a member
    whose history reaches back to this message; ``departed_edit_seq``: the chat's edit count
    when the recipient left the period of membership that covered this message, or None if
    no such departure is recorded.
    """
    if member_sees:
        return live
    if departed_edit_seq is not None:
        if edit_seq <= departed_edit_seq:
            return live  # not edited since they left (a later deletion only wipes it)
    elif live.edit_date is None:
        # A departure from before departures were recorded: a message never edited is the
        # one that was pushed to them while they were in.
        return live
    return withheld(live)


def withheld(live: Message) -> Message:
    """A tombstone of ``live``: who wrote it and when, which its recipient already had."""
    return Message(chat_id=live.chat_id, id=live.id, sender_id=live.sender_id, date=live.date,
                   reply_to=live.reply_to, deleted=True)


def member_sees(history_from: int | None, message_id: int) -> bool:
    """Whether a current member (``history_from`` None: not a member) sees the live row of
    message ``message_id``: their history reaches back to it."""
    return history_from is not None and message_id > history_from


def departure(history_from: int, last_message_id: int, edit_seq: int) -> Departure | None:
    """What a member leaving now could see, to be recorded: the period of message ids since
    they joined and the chat's edit count. None if the period held no message (nothing to
    remember, however long the group's history)."""
    if last_message_id <= history_from:
        return None
    return Departure(history_from, last_message_id, edit_seq)


def covering(departures: Iterable[Departure], message_id: int) -> Departure | None:
    """The departure that ended the membership which showed message ``message_id`` (periods
    of one member in one chat never overlap)."""
    return next((d for d in departures if d.first_id < message_id <= d.last_id), None)


def entitled(live: Message, edit_seq: int, history_from: int | None,
             departures: Iterable[Departure]) -> Message:
    """The message an update of the log shows its recipient, from what a backend read: the
    recipient's ``history_from`` in the chat (None: not a member now) and their recorded
    departures from it."""
    if member_sees(history_from, live.id):
        return live
    period = covering(departures, live.id)
    return entitled_message(live, edit_seq, member_sees=False,
                            departed_edit_seq=None if period is None else period.edit_seq)
