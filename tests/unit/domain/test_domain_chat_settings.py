"""Mute and pin rules (pigeon.domain.chat_settings), without any database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import chat_settings as rules
from pigeon.domain.records import Standing
from pigeon.protocol import limits
from pigeon.protocol.errors import Forbidden, NotFound
from pigeon.protocol.types import Message

dates = st.floats(min_value=0, max_value=limits.MAX_DATE, allow_nan=False)


@given(dates, dates)
def test_a_mute_in_the_past_is_no_mute(until, now):
    stored = rules.mute_until(until, now)
    assert stored == (until if until > now else rules.NOT_MUTED)
    assert stored == 0.0 or stored > now


def standing(kind: str, role: str, history_from: int = 0) -> Standing:
    return Standing(kind=kind, role=role, history_from=history_from,  # type: ignore[arg-type]
                    read_inbox_max_id=0, last_message_id=10)


@pytest.mark.parametrize(("kind", "role", "allowed"), [
    ("private", "member", True), ("group", "owner", True), ("group", "admin", True),
    ("group", "member", False),
])
def test_who_may_pin(kind, role, allowed):
    if allowed:
        rules.may_pin(standing(kind, role))
    else:
        with pytest.raises(Forbidden) as info:
            rules.may_pin(standing(kind, role))
        assert info.value.code == "NOT_ADMIN"


def test_only_a_message_one_sees_is_pinned():
    seen = Message(chat_id=3, id=5, sender_id=1, date=1.0, text="x")
    assert rules.pinnable(seen, standing("group", "owner"), 3, 5) == 5
    for message, history_from in ((None, 0), (seen, 5), (Message(
            chat_id=3, id=5, sender_id=1, date=1.0, deleted=True), 0)):
        with pytest.raises(NotFound) as info:
            rules.pinnable(message, standing("group", "owner", history_from), 3, 5)
        assert info.value.code == "MESSAGE_NOT_FOUND"


def test_deleting_the_pinned_message_unpins():
    assert rules.unpinned_by_deletion(5, [4, 5])
    assert not rules.unpinned_by_deletion(5, [4, 6])
    assert not rules.unpinned_by_deletion(0, [0])
