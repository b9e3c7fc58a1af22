"""Issue 7, finding 16: what the CLI prints for people can never carry a terminal control, a
bidi override or an invisible character from someone else, whatever they wrote."""

import asyncio
import json

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pigeon.cli.output import (
    CONTINUATION, echo, json_line, message_json, message_line, visible, visible_body, who,
)
from pigeon.cli.stickers import send_sticker
from pigeon.protocol.types import Message, MessageSticker, User
from text_strategies import any_text, forbidden


def message(text: str, **extra) -> Message:
    return Message(id=7, chat_id=3, sender_id=2, date=1_700_000_000.0, text=text, **extra)


@settings(max_examples=500)
@given(any_text)
def test_one_line_fields_show_nothing_hidden(text):
    shown = visible(text)
    assert not any(forbidden(ch) for ch in shown)
    shown.encode("utf-8")  # lone surrogates escaped too, or this raises: printable anywhere


@settings(max_examples=500)
@given(any_text, any_text, st.one_of(st.none(), any_text))
def test_a_message_line_only_breaks_where_the_renderer_indents(text, name, username):
    line = message_line(message(text), User(id=2, name=name, username=username))
    first, *rest = line.split("\n")
    assert first.startswith("[chat:3 #7] ")
    # Every line break is one the renderer put in, followed by the continuation mark: no
    # line of a message can start where a message line starts.
    assert all(part.startswith(CONTINUATION[1:]) for part in rest)
    assert not any(forbidden(ch) for ch in line.replace("\n", ""))
    assert len(rest) == text.replace("\r\n", "\n").count("\n")


@settings(max_examples=300)
@given(any_text, any_text, st.one_of(st.none(), any_text))
def test_json_is_exact_and_shows_nothing_hidden(text, name, username):
    line = message_json(message(text), User(id=2, name=name, username=username))
    assert not any(forbidden(ch) for ch in line)
    decoded = json.loads(line)
    assert (decoded["text"], decoded["sender_name"], decoded["sender_username"]) == (
        text, name, username)


@given(st.recursive(st.one_of(st.none(), st.integers(), any_text),
                    lambda inner: st.lists(inner) | st.dictionaries(any_text, inner)))
def test_json_line_round_trips_anything(obj):
    line = json_line(obj)
    assert json.loads(line) == obj and not any(forbidden(ch) for ch in line)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # read out each time
@given(any_text)
def test_echo_lets_through_only_line_breaks(capsys, text):
    capsys.readouterr()
    echo(text)
    out = capsys.readouterr().out
    assert not any(forbidden(ch) for ch in out.replace("\n", ""))


def test_the_forged_line_of_the_issue_is_shown_for_what_it_is():
    forged = "\x1b[2K\rAlice: fake"
    assert visible(forged) == "\\x1b[2K\\rAlice: fake"
    assert visible("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"  # retitling the terminal
    assert visible("evil\u202etxt.exe") == "evil<U+202E>txt.exe"
    assert visible("\x9b2K") == "\\x9b2K" and visible("a\u200bb") == "a<U+200B>b"
    assert visible("Ünïcödé, 日本語, 👩\u200d💻") == "Ünïcödé, 日本語, 👩\u200d💻"  # untouched
    line = message_line(message("hi\n[chat:3 #8] 2023-11-14 22:13 Alice: fake"), None)
    assert line.endswith(": hi\n  | [chat:3 #8] 2023-11-14 22:13 Alice: fake")
    assert visible_body("a\r\nb\rc") == "a\n  | b\\rc"


def test_names_in_who_are_visible():
    assert who(User(id=1, name="\x1b[31mBob", username="bob\u202e"), 1) == \
        "\\x1b[31mBob (@bob<U+202E>)"


def test_a_sticker_message_shows_its_sticker_and_json_carries_it_exactly():
    sticker = MessageSticker(set="owls", index=2, emoji="🐶\x1b[2J", file_id="ab" * 32)
    msg = Message(chat_id=3, id=7, sender_id=2, date=1_700_000_000.0, sticker=sticker)
    assert "[sticker 🐶\\x1b[2J owls:2]" in message_line(msg, None)
    body = json.loads(message_json(msg, None))
    assert body["text"] == "" and body["sticker"] == {
        "set": "owls", "index": 2, "emoji": "🐶\x1b[2J", "file_id": "ab" * 32}
    assert "sticker" not in json.loads(message_json(message("hi"), None))


@pytest.mark.parametrize("ref", ["owls", "owls:0", "owls:121", ":1", "owls:x", "owls:²"])
def test_a_sticker_reference_is_set_colon_n_from_1(ref):
    with pytest.raises(click.UsageError):
        asyncio.run(send_sticker(None, 1, ref, None))  # type: ignore[arg-type]


def test_envelopes_lost_to_the_retention_are_a_line_of_their_own():
    from pigeon.cli.secret import lost_line
    from pigeon.client.inbox import InboxGap

    gap = InboxGap(count=3, first=4, last=6)
    assert json.loads(lost_line(gap, as_json=True)) == {
        "type": "lost", "secret": True, "count": 3, "error": gap.reason}
    assert lost_line(gap, as_json=False).startswith("[secret] 3 end-to-end message(s)")
