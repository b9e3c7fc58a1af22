"""What `receive` prints for edits, deletions, read receipts, typing and membership changes
(cli/events.py): one line each, nothing hidden that someone else wrote, JSON exact and typed."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.cli import events
from pigeon.protocol.types import Chat, Message, User
from pigeon.protocol.updates import ChatUpdate, DeleteMessages, ReadOutbox, Typing
from text_strategies import any_text, forbidden

ids = st.integers(min_value=1, max_value=2**62)


def shows_nothing_hidden(line: str) -> bool:
    return "\n" not in line and not any(forbidden(ch) for ch in line)


@settings(max_examples=300)
@given(any_text, st.one_of(st.none(), ids), st.sampled_from(["owner", "member", None]), ids)
def test_a_membership_line_is_one_line_and_its_json_exact(title, invited_by, role, count):
    chat = Chat(id=5, kind="group", title=title, member_count=count, role=role,
                invited_by=invited_by)
    update = ChatUpdate(pts=3, chat=chat)
    line = events.membership(update, as_json=False)
    assert line.startswith("[chat:5] ") and shows_nothing_hidden(line)
    body = json.loads(events.membership(update, as_json=True))
    assert shows_nothing_hidden(events.membership(update, as_json=True))
    assert (body["type"], body["title"], body["members"], body["role"]) == (
        "chat", title, count, role)
    assert body.get("invited_by") == invited_by


@settings(max_examples=300)
@given(any_text, st.one_of(st.none(), any_text))
def test_typing_shows_the_name_made_visible(name, username):
    update = Typing(pts=0, chat_id=4, user_id=9)
    user = User(id=9, name=name, username=username)
    assert shows_nothing_hidden(events.typing(update, user, as_json=False))
    body = json.loads(events.typing(update, user, as_json=True))
    assert (body["type"], body["sender_name"], body["sender_username"]) == (
        "typing", name, username)
    assert events.typing(update, None, as_json=False) == "[chat:4] user 9 is typing"


@settings(max_examples=300)
@given(any_text)
def test_a_quote_is_one_short_visible_line(text):
    quote = events.quoted(text)
    assert shows_nothing_hidden(quote) and quote.startswith("'") and quote.endswith("'")
    assert len(" ".join(text.split())) > events.QUOTE_CHARS or \
        quote == f"'{events.visible(' '.join(text.split()))}'"


def test_deletions_and_read_receipts():
    gone = DeleteMessages(pts=2, chat_id=3, message_ids=[4, 5], for_everyone=True)
    assert events.deletion(gone, as_json=False) == "[chat:3] deleted #4, #5 for everyone"
    mine = DeleteMessages(pts=2, chat_id=3, message_ids=[4])
    assert events.deletion(mine, as_json=False) == "[chat:3] deleted #4 for you"
    assert json.loads(events.deletion(gone, as_json=True)) == {
        "type": "delete", "chat": 3, "ids": [4, 5], "for_everyone": True}
    read = ReadOutbox(pts=3, chat_id=3, max_id=9)
    assert events.read_receipt(read, as_json=False) == "[chat:3] read up to #9"
    assert json.loads(events.read_receipt(read, as_json=True)) == {
        "type": "read", "chat": 3, "up_to": 9}


def test_an_edit_is_typed_and_a_message_is_not():
    msg = Message(chat_id=3, id=7, sender_id=2, date=1.0, text="hi", edit_date=2.0)
    plain = json.loads(events.message_event(msg, None, edited=False, quote=None, as_json=True))
    assert "type" not in plain and "edited" not in plain
    edit = json.loads(events.message_event(msg, None, edited=True, quote=None, as_json=True))
    assert (edit["type"], edit["edited"], edit["text"]) == ("edit", True, "hi")
    reply = Message(chat_id=3, id=8, sender_id=2, date=1.0, text="yes", reply_to=7)
    line = events.message_event(reply, None, edited=False, quote=events.quoted("hi"),
                                as_json=False)
    assert "(reply to #7: 'hi'): yes" in line
