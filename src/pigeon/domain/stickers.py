"""Rules of sticker sets (issue 10): names, titles, emoji, bounds, who may change a set and
when. Pure: a backend calls these with the rows it read, inside the transaction that writes.

Editing after publishing (our call): a published set only grows. Its artist may still add
stickers, up to :data:`MAX_STICKERS_PER_SET`, so that everyone who installed it gets the new
ones; removing or moving a sticker, or renaming the set, is refused (STICKER_SET_PUBLISHED),
because ``SET:N`` must keep naming the sticker that people learnt it by and a shared link
must keep showing what it showed. Before publishing, everything may change.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple, TypeVar

from pigeon.protocol.characters import first_hidden
from pigeon.protocol.errors import Conflict, Forbidden, InvalidArgument, NotFound
from pigeon.protocol.stickers import (
    MAX_EMOJI_CHARS,
    MAX_EMOJI_PER_STICKER,
    MAX_INSTALLED_SETS,
    MAX_SETS_PER_USER,
    MAX_STICKERS_PER_SET,
    SET_NAME_MAX,
    SET_NAME_MIN,
)

from .text import visible_line

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz")
_NAME_REST = _NAME_FIRST | frozenset("0123456789_")
# What makes a string an emoji rather than text: a symbol (So: most emoji, flags' regional
# indicators; Sk: skin-tone modifiers) or an enclosing mark (Me: keycaps such as 1️⃣).
_EMOJI_CATEGORIES = frozenset({"So", "Sk", "Me"})

T = TypeVar("T")


class SetRow(NamedTuple):
    """What the rules need of a stored set."""

    id: int
    author_id: int
    published: bool
    size: int


def set_name(raw: str) -> str:
    """A set's short name as stored: lowercase (case does not tell names apart)."""
    name = raw.lower()
    if not (SET_NAME_MIN <= len(name) <= SET_NAME_MAX and name[:1] in _NAME_FIRST
            and all(ch in _NAME_REST for ch in name)):
        raise InvalidArgument(
            f"a sticker set's name is {SET_NAME_MIN}-{SET_NAME_MAX} letters (a-z), digits and "
            "_, starting with a letter", code="STICKER_SET_NAME_INVALID")
    return name


def set_title(raw: str) -> str:
    return visible_line(raw, "a sticker set's title", "TITLE_INVALID")


def licence(raw: str) -> str:
    """Free text ("CC BY 4.0", "free to share"); "" for none said."""
    return "" if not raw.strip() else visible_line(raw, "a licence", "LICENCE_INVALID")


def emoji_list(raw: list[str]) -> list[str]:
    """One or more emoji, each once, in the order given."""
    if not raw:
        raise InvalidArgument("a sticker needs at least one emoji", code="EMOJI_INVALID")
    out: list[str] = []
    for e in raw:
        one = emoji(e)
        if one not in out:
            out.append(one)
    if len(out) > MAX_EMOJI_PER_STICKER:
        raise InvalidArgument(f"a sticker has at most {MAX_EMOJI_PER_STICKER} emoji",
                              code="EMOJI_INVALID")
    return out


def emoji(raw: str) -> str:
    e = raw.strip()
    if (not e or len(e) > MAX_EMOJI_CHARS or first_hidden(e) is not None
            or any(ch.isspace() or unicodedata.category(ch).startswith("L") for ch in e)
            or not any(unicodedata.category(ch) in _EMOJI_CATEGORIES for ch in e)):
        raise InvalidArgument(f"{e[:MAX_EMOJI_CHARS]!r} is not an emoji", code="EMOJI_INVALID")
    return e


def copy_fits(name: str, sizes: list[int], held: int, limit: int) -> None:
    """A copy of another region's set ``name`` (its images' ``sizes``) may be kept beside
    ``held`` bytes of the other copies only within ``limit`` (``region_sticker_bytes``):
    else QUOTA_EXCEEDED (the copies a region keeps are bounded on its disk)."""
    if held + sum(sizes) > limit:
        raise Conflict(f"this region keeps no more sticker sets of other regions (over "
                       f"{limit} bytes of their images): {name!r} is not copied",
                       code="QUOTA_EXCEEDED")


def no_set(name: str) -> NotFound:
    return NotFound(f"no sticker set named {name!r}", code="STICKER_SET_NOT_FOUND")


def seen_set(row: SetRow | None, name: str, viewer_id: int | None) -> SetRow:
    """A set as ``viewer_id`` (None: anyone, the public page) may see it: published, or
    their own. An unpublished set of someone else's reads as absent."""
    if row is None or not (row.published or row.author_id == viewer_id):
        raise no_set(name)
    return row


def owned_set(row: SetRow | None, name: str, user_id: int) -> SetRow:
    """A set its author changes; anyone else is refused (after finding it exists, since a
    published set's author is public anyway)."""
    row = seen_set(row, name, user_id)
    if row.author_id != user_id:
        raise Forbidden(f"the sticker set {name!r} is someone else's", code="NOT_SET_AUTHOR")
    return row


def check_new_set(name_taken: bool, name: str, sets_authored: int) -> None:
    if name_taken:
        raise Conflict(f"the sticker set name {name!r} is taken", code="STICKER_SET_NAME_TAKEN")
    if sets_authored >= MAX_SETS_PER_USER:
        raise InvalidArgument(f"an account makes at most {MAX_SETS_PER_USER} sticker sets",
                              code="TOO_MANY_STICKER_SETS")


def check_room(row: SetRow) -> None:
    if row.size >= MAX_STICKERS_PER_SET:
        raise InvalidArgument(f"a sticker set holds at most {MAX_STICKERS_PER_SET} stickers",
                              code="TOO_MANY_STICKERS")


def check_unpublished(row: SetRow, what: str) -> None:
    if row.published:
        raise Conflict(f"a published set only grows: its stickers cannot be {what} (that "
                       "would change what SET:N means to the people who use it)",
                       code="STICKER_SET_PUBLISHED")


def check_position(row: SetRow, index: int) -> None:
    if not 1 <= index <= row.size:
        raise NotFound(f"the set has no sticker {index} (it has {row.size})",
                       code="STICKER_NOT_FOUND")


def check_publishable(row: SetRow) -> None:
    if row.size == 0:
        raise NotFound("add a sticker before publishing the set", code="STICKER_NOT_FOUND")


def check_install_room(installed: int) -> None:
    if installed >= MAX_INSTALLED_SETS:
        raise InvalidArgument(f"an account installs at most {MAX_INSTALLED_SETS} sticker "
                              "sets: uninstall one first", code="TOO_MANY_STICKER_SETS")


def moved(items: list[T], index: int, to: int) -> list[T]:
    """``items`` with the one at place ``index`` (from 1) moved to place ``to``."""
    out = list(items)
    item = out.pop(index - 1)
    out.insert(to - 1, item)
    return out
