"""The rule of what a message update shows a member who left (domain/visibility.py), with
property tests: whatever the joins and departures, nobody reads an edit made after they left."""

from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.records import Departure
from pigeon.domain.visibility import covering, departure, entitled, entitled_message, member_sees
from pigeon.protocol.types import FwdFrom, Message

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


# -- what a backend reads: membership now, and recorded departures ----------------------------
def test_a_current_member_whose_history_reaches_it_sees_the_live_row():
    assert entitled(EDITED, 9, history_from=2, departures=[]) is EDITED
    assert member_sees(2, 3) and not member_sees(3, 3) and not member_sees(None, 3)


def test_the_departure_covering_the_message_decides():
    periods = [Departure(0, 2, 1), Departure(2, 5, 4)]  # left after 2, rejoined, left after 5
    assert covering(periods, 3) == Departure(2, 5, 4)
    assert covering(periods, 6) is None
    assert entitled(EDITED, 4, history_from=None, departures=periods) is EDITED
    assert is_tombstone(entitled(EDITED, 5, history_from=None, departures=periods))
    # Rejoined later: the new membership starts after the message, the old one decides.
    assert is_tombstone(entitled(EDITED, 5, history_from=5, departures=periods))


def test_a_departure_is_recorded_only_if_the_period_held_a_message():
    assert departure(4, 4, 7) is None
    assert departure(4, 9, 7) == Departure(4, 9, 7)


messages = st.builds(
    Message, chat_id=st.just(7), id=st.integers(1, 30), sender_id=st.integers(1, 5),
    date=st.just(10.0), text=st.text(max_size=5),
    edit_date=st.one_of(st.none(), st.just(20.0)))


@st.composite
def periods(draw: st.DrawFn) -> list[Departure]:
    """Non-overlapping periods of membership, as one member's joins and departures make."""
    cuts = sorted(draw(st.sets(st.integers(0, 30), max_size=8)))
    out = []
    for first, last in zip(cuts[::2], cuts[1::2], strict=False):  # an odd last cut opens none
        out.append(Departure(first, last, draw(st.integers(0, 20))))
    return out


@given(messages, st.integers(0, 20), st.one_of(st.none(), st.integers(0, 30)), periods())
def test_nobody_reads_an_edit_made_after_they_left(live: Message, edit_seq: int,
                                                   history_from: int | None,
                                                   departures: list[Departure]):
    shown = entitled(live, edit_seq, history_from, departures)
    assert (shown.chat_id, shown.id, shown.sender_id, shown.date) == (7, live.id, live.sender_id,
                                                                      10.0)
    if member_sees(history_from, live.id):
        assert shown is live
        return
    assert shown is live or is_tombstone_of(shown, live)
    period = covering(departures, live.id)
    if shown is live and live.edit_date is not None:
        assert period is not None and edit_seq <= period.edit_seq
    if period is not None and edit_seq > period.edit_seq:
        assert shown is not live


def is_tombstone_of(shown: Message, live: Message) -> bool:
    return shown.deleted and shown.text == "" and shown.fwd_from is None \
        and shown.edit_date is None and shown.reply_to == live.reply_to
