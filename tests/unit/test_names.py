"""Issue 7, finding 16, server side: names, titles and device names with a control, bidi or
invisible character are refused with a typed error; whatever is accepted shows as itself."""

import pytest
from hypothesis import given, settings

from pigeon.protocol.errors import InvalidArgument
from pigeon.server.chats import validate_title
from pigeon.server.users import validate_device, validate_name, validate_username

from text_strategies import any_text, forbidden

VALIDATORS = [(validate_name, "NAME_INVALID"), (validate_title, "TITLE_INVALID"),
              (validate_device, "DEVICE_INVALID")]


@settings(max_examples=300)
@given(any_text)
@pytest.mark.parametrize(("validate", "code"), VALIDATORS)
def test_accepted_names_hold_nothing_hidden(validate, code, raw):
    try:
        name = validate(raw)
    except InvalidArgument as exc:
        assert exc.code == code
        assert not any(forbidden(ch) for ch in exc.message)  # it names the character visibly
        return
    assert name and name == name.strip() and "  " not in name
    assert not any(forbidden(ch) for ch in name)


@pytest.mark.parametrize("bad", ["\x00", "Al\x00ice", "\x1b[2K\rAlice", "Bob\u202egnp.exe",
                                 "Bob\u2066", "\u200bBob", "Bob\x7f", "Bob\x9b", "Line\nbreak",
                                 "Tab\tbed", "Sep\u2028arated", "\ufeffBOM", "Tag\U000e0041"])
@pytest.mark.parametrize(("validate", "code"), VALIDATORS)
def test_hidden_characters_are_refused(validate, code, bad):
    with pytest.raises(InvalidArgument) as err:
        validate(bad)
    assert err.value.code == code


@pytest.mark.parametrize("good", ["Zoë", "Ёжик", "محمد", "שלום", "日本語", "نیم\u200cفاصله",
                                  "👩\u200d💻 dev", "  spaced   out  "])
def test_every_script_and_emoji_sequences_are_fine(good):
    assert validate_name(good) == " ".join(good.split())


def test_no_device_name_is_unnamed():
    assert validate_device("") == validate_device("   ") == "unnamed device"


@given(any_text)
def test_usernames_are_plain_ascii(raw):
    try:
        name = validate_username(raw)
    except InvalidArgument as exc:
        assert exc.code == "USERNAME_INVALID"
        assert not any(forbidden(ch) for ch in exc.message)  # the refusal quotes it visibly
        return
    assert name.isascii() and name.replace("_", "").isalnum()
