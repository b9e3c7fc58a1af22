"""Pages: of a chat's history, of the chats list, of the update log; cut by count and by bytes.

Every page answer must fit in one frame (issue 7, finding 3), so a page holds at most
``limit`` items and, past its first, no more than ``max_bytes`` of them encoded
(:class:`pigeon.protocol.sizes.ByteBudget`). A page is never empty while items remain, so a
reader always moves on; it pages on from its last item (``before_id``, the last dialog's
``(date, chat id)``, ``state.pts`` while ``more``).

:func:`page` takes the items lazily and stops pulling them at the cut: a backend hands it a
generator over its cursor, and the rows after a cut page are never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.sizes import PAGE_BYTES, ByteBudget
from pigeon.protocol.types import State
from pigeon.protocol.updates import AnyUpdate, Difference

T = TypeVar("T")

NEWEST = 2**62
"""Above every message id: a history page without ``before_id`` starts at the newest."""


def page(items: Iterable[T], limit: int, max_bytes: int | None = PAGE_BYTES) -> list[T]:
    """The first items: at most ``limit``, and fewer (but at least one) when more would encode
    to over ``max_bytes`` (None: count only)."""
    budget = ByteBudget(max_bytes) if max_bytes is not None else None
    out: list[T] = []
    if limit <= 0:
        return out
    for item in items:
        if budget is not None and not budget.take(item):
            break
        out.append(item)
        if len(out) >= limit:
            break
    return out


# -- history ------------------------------------------------------------------------------------
def history_range(history_from: int, before_id: int | None) -> tuple[int, int]:
    """The message ids a history page is taken from, newest first: after the start of the
    reader's history, before ``before_id`` (exclusive both)."""
    return history_from, before_id if before_id is not None else NEWEST


# -- the chats list -----------------------------------------------------------------------------
DialogCursor = tuple[float, int]


def dialog_date(joined: float, last_message_date: float | None) -> float:
    """Where a dialog sorts: its last message's date, or when the user joined if later (a
    group one was just added to comes first)."""
    return max(joined, last_message_date or 0.0)


def dialog_cursor(offset_date: float | None, offset_chat_id: int | None) -> DialogCursor | None:
    """The position after which the next chats.list page starts: the last dialog's date and
    chat id, both or neither."""
    if (offset_date is None) != (offset_chat_id is None):
        raise InvalidArgument("offset_date and offset_chat_id go together: both from the last "
                              "dialog of the previous page")
    if offset_date is None or offset_chat_id is None:
        return None
    return (offset_date, offset_chat_id)


def dialog_follows(date: float, chat_id: int, cursor: DialogCursor | None) -> bool:
    """Whether a dialog comes after ``cursor`` in the list, which runs by (date, chat id)
    descending. A backend selects and orders by this in its query language (the list must
    not load every chat); its definition is this one."""
    return cursor is None or (date, chat_id) < cursor


# -- the update log -----------------------------------------------------------------------------
def difference(updates: Iterable[AnyUpdate], since_pts: int, current_pts: int, limit: int,
               max_bytes: int = PAGE_BYTES) -> Difference:
    """One page of a user's updates after ``since_pts`` (``updates`` are those, in order;
    ``current_pts`` is the user's newest). While ``more``, ``state.pts`` is the last update
    given, from which the client asks again; after the last page, ``current_pts``."""
    got = page(updates, limit, max_bytes)
    last = got[-1].pts if got else since_pts
    more = last < current_pts
    return Difference(updates=got, state=State(pts=last if more else current_pts, date=0.0),
                      more=more)


def stream_page(rows: Iterable[tuple[int, Any]], after: int, head: int, limit: int,
                max_bytes: int = PAGE_BYTES) -> tuple[list[tuple[int, Any]], int, bool]:
    """One page of a stream: ``rows`` are its ``(seq, body)`` after ``after`` in order,
    ``head`` its last position. Returns the items (at most ``limit`` and ``max_bytes``, at
    least one while any remain), the position the page reaches (the last item's while
    ``more``, else the head: nothing after it is for this reader) and ``more``."""
    got = page(rows, limit, max_bytes)
    last = got[-1][0] if got else after
    # No row at all after ``after``: the items up to the head were deleted (a device inbox
    # acknowledged or purged), so nothing remains and the reader moves on to the head.
    more = bool(got) and last < head
    return got, last if more else max(head, after), more
