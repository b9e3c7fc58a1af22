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

from pigeon.protocol.types import Message


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
