"""Pages by count and bytes (pigeon.domain.paging), without any database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain import paging
from pigeon.protocol import updates as up
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.sizes import encoded_size


class Counted:
    """An iterator that counts what was pulled from it (a backend's cursor)."""

    def __init__(self, items: list[str]) -> None:
        self.items = items
        self.pulled = 0

    def __iter__(self) -> Iterator[str]:
        for item in self.items:
            self.pulled += 1
            yield item


texts = st.lists(st.text(max_size=60), max_size=30)


@given(texts, st.integers(0, 40), st.integers(1, 600))
def test_a_page_is_a_bounded_prefix_that_never_stalls(items: list[str], limit: int,
                                                      max_bytes: int):
    source = Counted(items)
    got = paging.page(source, limit, max_bytes)
    assert got == items[: len(got)]
    assert len(got) <= limit
    if items and limit > 0:
        assert got, "a page is never empty while items remain"
    size = sum(encoded_size(i) for i in got)
    assert size <= max_bytes or len(got) == 1
    if len(got) < min(limit, len(items)):  # cut by bytes: the next one would not have fit
        assert size + encoded_size(items[len(got)]) > max_bytes
        assert source.pulled == len(got) + 1
    else:
        assert source.pulled == len(got)  # never a row more than the page needs


def test_count_only_pages():
    assert paging.page(iter(["x" * 1000] * 5), 3, None) == ["x" * 1000] * 3


def test_history_range():
    assert paging.history_range(4, None) == (4, paging.NEWEST)
    assert paging.history_range(4, 9) == (4, 9)


def test_dialogs_sort_by_last_message_or_joining():
    assert paging.dialog_date(10.0, None) == 10.0
    assert paging.dialog_date(10.0, 12.0) == 12.0
    assert paging.dialog_date(10.0, 8.0) == 10.0
    assert paging.dialog_cursor(None, None) is None
    assert paging.dialog_cursor(5.0, 3) == (5.0, 3)
    with pytest.raises(InvalidArgument):
        paging.dialog_cursor(5.0, None)
    assert paging.dialog_follows(5.0, 2, (5.0, 3)) and not paging.dialog_follows(5.0, 3, (5.0, 3))
    assert paging.dialog_follows(6.0, 1, None)


def log(count: int, big: bool) -> list[up.AnyUpdate]:
    ids = list(range(1, 40 if big else 2))
    return [up.DeleteMessages(pts=p, chat_id=1, message_ids=ids) for p in range(1, count + 1)]


@given(st.integers(0, 60), st.integers(1, 15), st.integers(40, 400), st.booleans())
def test_paging_through_the_log_gets_every_update_once_in_order(
        current: int, limit: int, max_bytes: int, big: bool):
    entries = log(current, big)
    since, got = 0, []
    for _ in range(current + 2):
        diff = paging.difference((u for u in entries if u.pts > since), since, current, limit,
                                 max_bytes)
        got += diff.updates
        if not diff.more:
            assert diff.state.pts == current
            break
        assert diff.updates and diff.state.pts == diff.updates[-1].pts < current
        since = diff.state.pts
    assert [u.pts for u in got] == list(range(1, current + 1))
