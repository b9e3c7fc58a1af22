"""What an upload becomes once its bytes are all in: a photo (decoded, checked, location
stripped, with a thumbnail) or a document, by its content. Blocking: run in a thread."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pigeon.protocol.errors import InvalidArgument

from .images import DEFAULT_MAX_PIXELS, inspect_photo
from .sniff import HEAD_BYTES, IMAGE_MIMES, sniff


class Ingested(NamedTuple):
    kind: str          # photo | document
    mime: str
    width: int = 0
    height: int = 0
    thumb: bool = False  # a thumbnail was written
    rewritten: bool = False  # the file was written anew (its location stripped): rehash it


def ingest(path: Path, wanted: str, keep_location: bool, thumb: Path,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> Ingested:
    """``wanted``: what the client asked for (auto, photo, document). A document is taken
    as it is, typed by its first bytes; a photo, or in auto what looks like one, must decode
    fully (IMAGE_INVALID, IMAGE_TOO_LARGE, MEDIA_TYPE_MISMATCH otherwise)."""
    with path.open("rb") as f:
        mime = sniff(f.read(HEAD_BYTES))
    if wanted == "document":
        return Ingested("document", mime)
    if wanted == "photo" and mime not in IMAGE_MIMES:
        raise InvalidArgument(f"this file is not a photo (its content is {mime}); send it as "
                              "a document", code="MEDIA_TYPE_MISMATCH")
    if mime not in IMAGE_MIMES:
        return Ingested("document", mime)
    photo = inspect_photo(path, keep_location, thumb, max_pixels)
    return Ingested("photo", photo.mime, photo.width, photo.height, True, photo.stripped)
