"""The rule of what a message update shows a member who left (domain/visibility.py)."""

from pigeon.protocol.types import FwdFrom, Message
from pigeon.domain.visibility import entitled_message

ORIGINAL = Message(chat_id=7, id=3, sender_id=1, date=10.0, text="hi", reply_to=2,
                   fwd_from=FwdFrom(sender_id=9, chat_id=8, message_id=1, date=5.0))
EDITED = Message(chat_id=7, id=3, sender_id=1, date=10.0, text="hi!", reply_to=2,
                 edit_date=20.0)


def shown(live, edit_seq, member_sees=False, departed=None):
    return entitled_message(live, edit_seq, member_sees=member_sees, departed_edit_seq=departed)


def is_tombstone(msg: Message) -> bool:
    return (msg.deleted and msg.text == "" and msg.fwd_from is None and msg.edit_date is None
            and (msg.chat_id, msg.id, msg.sender_id, msg.date) == (7, 3, 1, 10.0))


def test_a_member_who_sees_the_message_gets_the_live_row():
    assert shown(EDITED, 5, member_sees=True) is EDITED


def test_an_edit_before_the_departure_is_theirs_one_after_is_not():
    assert shown(EDITED, 4, departed=4) is EDITED
    assert is_tombstone(shown(EDITED, 5, departed=4))


def test_a_message_never_edited_is_what_they_were_pushed():
    assert shown(ORIGINAL, 0, departed=3) is ORIGINAL
    assert shown(ORIGINAL, 0) is ORIGINAL  # a departure from before they were recorded


def test_an_edit_of_unknown_date_is_withheld_without_a_recorded_departure():
    assert is_tombstone(shown(EDITED, 0))  # edited before migration 2, departure unrecorded
