"""Sticker sets on the wire (issue 10, stickers).

An artist's set has a unique short name (the one in its link, ``/stickers/<name>``), a title,
its author (the account that made it) and a licence. Its stickers are numbered from 1 in the
set's order; each is a normalised WebP image, named by its SHA-256 (``file_id``), served to
anyone at ``/stickers/files/<file_id>.webp``. A set is visible to others once published.

The source image of a new sticker does not fit in a frame (64 KiB), so it is sent by HTTP:
``POST /v1/stickers/<name>`` with the session token (docs/protocol.md, "Stickers").
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .types import Struct

#: a set's short name: a letter, then letters, digits and _, 4-32 characters; case does not
#: tell two names apart (stored and shown lowercase)
SET_NAME_MIN, SET_NAME_MAX = 4, 32
SET_NAME_PATTERN = rf"^[A-Za-z][A-Za-z0-9_]{{{SET_NAME_MIN - 1},{SET_NAME_MAX - 1}}}$"
#: stickers in one set, emoji on one sticker, sets one account may author, sets one account
#: may install, sets one search answers, at most
MAX_STICKERS_PER_SET = 120
MAX_EMOJI_PER_STICKER = 8
MAX_SETS_PER_USER = 50
MAX_INSTALLED_SETS = 200
MAX_SEARCH_RESULTS = 50
#: characters of one emoji (a flag or a family with joiners and modifiers is several code
#: points) and of a licence
MAX_EMOJI_CHARS = 16
MAX_LICENCE_CHARS = 128
MAX_SET_TITLE_CHARS = 64
MAX_QUERY_CHARS = 64

SetName = Annotated[str, Meta(min_length=1, max_length=SET_NAME_MAX)]
#: a sticker's place in its set, from 1
Position = Annotated[int, Meta(ge=1, le=MAX_STICKERS_PER_SET)]
Emoji = Annotated[str, Meta(min_length=1, max_length=MAX_EMOJI_CHARS)]
EmojiList = Annotated[list[Emoji], Meta(min_length=1, max_length=MAX_EMOJI_PER_STICKER)]
StickerTitle = Annotated[str, Meta(max_length=MAX_SET_TITLE_CHARS)]
Licence = Annotated[str, Meta(max_length=MAX_LICENCE_CHARS)]
Query = Annotated[str, Meta(max_length=MAX_QUERY_CHARS)]
SearchLimit = Annotated[int, Meta(ge=1, le=MAX_SEARCH_RESULTS)]
#: a sticker file's name: its SHA-256, lowercase hex
FileId = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


class Sticker(Struct):
    """One sticker of a set: its place (from 1), emoji and normalised image."""

    index: int
    emoji: list[str]
    file_id: str
    width: int
    height: int
    animated: bool = False
    size: int = 0


class StickerSetInfo(Struct):
    """A set as a search lists it."""

    name: str
    title: str
    author_id: int
    author_name: str
    count: int
    published: bool = False
    installed: bool = False
    licence: str = ""
    cover: str = ""  # the first sticker's file_id, "" for an empty set


class StickerSet(Struct):
    """A whole set with its stickers (``stickers.get_set`` and every artist call)."""

    info: StickerSetInfo
    stickers: list[Sticker] = []


class FoundSticker(Struct):
    """A sticker found by emoji in one of the caller's installed sets."""

    set: str
    sticker: Sticker


class Installed(Struct):
    """The caller's installed sets, by name, in the order they were installed (newest last)."""

    names: list[str] = []
    pts: int = 0
