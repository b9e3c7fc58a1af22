"""Rules of sticker sets (pigeon.domain.stickers): names, emoji, bounds, who changes what."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import stickers as rules
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound
from pigeon.protocol.stickers import (
    MAX_EMOJI_PER_STICKER, MAX_INSTALLED_SETS, MAX_SETS_PER_USER, MAX_STICKERS_PER_SET,
)


def code_of(exc: pytest.ExceptionInfo[Exception]) -> str:
    return getattr(exc.value, "code", "")


@pytest.mark.parametrize("raw, name", [("Cats", "cats"), ("a_b1", "a_b1"), ("x" * 32, "x" * 32)])
def test_set_names_are_stored_lowercase(raw, name):
    assert rules.set_name(raw) == name


@pytest.mark.parametrize("raw", ["abc", "x" * 33, "1cat", "_cat", "cat-s", "çats", "ca ts", "",
                                 "cats\n", "ﬁsh"])
def test_bad_set_names_are_refused(raw):
    with pytest.raises(InvalidArgument) as exc:
        rules.set_name(raw)
    assert code_of(exc) == "STICKER_SET_NAME_INVALID"


@given(st.text(max_size=40))
def test_a_set_name_is_refused_or_safe_in_a_url_and_a_page(raw):
    try:
        name = rules.set_name(raw)
    except InvalidArgument as exc:
        assert exc.code == "STICKER_SET_NAME_INVALID"
    else:
        assert name.isascii() and name.replace("_", "").isalnum() and 4 <= len(name) <= 32
        assert rules.set_name(name) == name


@pytest.mark.parametrize("e", ["😀", "👍🏽", "👩‍💻", "🇩🇪", "1️⃣", "❤️"])
def test_emoji_are_accepted(e):
    assert rules.emoji(e) == e


@pytest.mark.parametrize("e", ["", "a", "ok", " ", "😀 😀", "😀\x1b[2J", "\u202e😀", "12",
                               "😀" * 17])
def test_what_is_not_one_emoji_is_refused(e):
    with pytest.raises(InvalidArgument) as exc:
        rules.emoji(e)
    assert code_of(exc) == "EMOJI_INVALID"


@given(st.lists(st.text(max_size=20), max_size=12))
def test_an_emoji_list_is_refused_or_each_one_once_within_its_bound(raw):
    try:
        out = rules.emoji_list(raw)
    except InvalidArgument as exc:
        assert exc.code == "EMOJI_INVALID"
    else:
        assert 1 <= len(out) <= MAX_EMOJI_PER_STICKER and len(set(out)) == len(out)


def test_emoji_per_sticker_are_bounded_after_repeats_are_dropped():
    many = [chr(0x1F400 + i) for i in range(MAX_EMOJI_PER_STICKER)]
    assert rules.emoji_list(many + many) == many
    with pytest.raises(InvalidArgument):
        rules.emoji_list([*many, "🦊"])
    with pytest.raises(InvalidArgument):
        rules.emoji_list([])


def test_bounds_at_their_edges():
    row = rules.SetRow(1, 7, False, MAX_STICKERS_PER_SET - 1)
    rules.check_room(row)
    with pytest.raises(InvalidArgument, match="at most"):
        rules.check_room(row._replace(size=MAX_STICKERS_PER_SET))
    rules.check_new_set(False, "x", MAX_SETS_PER_USER - 1)
    with pytest.raises(InvalidArgument):
        rules.check_new_set(False, "x", MAX_SETS_PER_USER)
    with pytest.raises(Conflict):
        rules.check_new_set(True, "x", 0)
    rules.check_install_room(MAX_INSTALLED_SETS - 1)
    with pytest.raises(InvalidArgument):
        rules.check_install_room(MAX_INSTALLED_SETS)


def test_who_sees_and_who_changes_a_set():
    draft = rules.SetRow(1, 7, False, 2)
    assert rules.seen_set(draft, "d", 7) == draft
    for viewer in (8, None):
        with pytest.raises(NotFound):
            rules.seen_set(draft, "d", viewer)
    with pytest.raises(NotFound):
        rules.seen_set(None, "d", 7)
    public = draft._replace(published=True)
    assert rules.seen_set(public, "d", None) == public
    with pytest.raises(Forbidden):
        rules.owned_set(public, "d", 8)
    with pytest.raises(Conflict):
        rules.check_unpublished(public, "moved")
    rules.check_unpublished(draft, "moved")
    for bad in (0, 3):
        with pytest.raises(NotFound):
            rules.check_position(draft, bad)
    with pytest.raises(NotFound):
        rules.check_publishable(draft._replace(size=0))


@given(st.integers(1, 10).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n),
                                                      st.integers(1, n))))
def test_moving_keeps_every_sticker_once(case):
    n, index, to = case
    items = list(range(1, n + 1))
    out = rules.moved(items, index, to)
    assert sorted(out) == items and out[to - 1] == index
