"""Media on the wire: what a message carries about a file (:class:`Media`) and the bodies of
the HTTP media API (docs/protocol.md, "Media over HTTP").

Files travel over plain HTTP on the server's port, not in WebSocket frames: a part of an
upload is a ``PUT`` of raw bytes, a download is a ranged ``GET``. Only their small JSON
bodies are defined here, each bounded, so that the server decodes them with the same care
as a frame.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from msgspec import Meta

from .types import OpenEnums, Struct

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

#: a file's id, and an upload's: 128 random bits, URL-safe base64 (what secrets.token_urlsafe
#: gives), with room for longer ids later
FILE_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
FILE_ID = re.compile(FILE_ID_PATTERN)
FileId = Annotated[str, Meta(pattern=FILE_ID_PATTERN)]
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
#: what no file may exceed, whatever the settings say (bounds every size on the wire)
MAX_FILE_BYTES = 64 * GIB
MIN_PART_BYTES = 64 * KIB
MAX_PART_BYTES = 32 * MIB
#: parts of one upload: a 2 GiB file in the smallest parts is 32,768 of them
MAX_PARTS = 65_536
MAX_FILE_NAME_CHARS = 255
MAX_MIME_CHARS = 100
#: the header that carries a part's SHA-256 (lowercase hex)
PART_HASH_HEADER = "X-Part-SHA256"

FileSize = Annotated[int, Meta(ge=1, le=MAX_FILE_BYTES)]
PartSize = Annotated[int, Meta(ge=MIN_PART_BYTES, le=MAX_PART_BYTES)]
FileName = Annotated[str, Meta(max_length=MAX_FILE_NAME_CHARS)]
Dimension = Annotated[int, Meta(ge=0, le=1 << 20)]

#: what a client asks an upload to become: "auto" lets the server decide from the content
WantedKind = Literal["auto", "photo", "document"]
MEDIA_KINDS = ("photo", "document")
if TYPE_CHECKING:
    SeenMediaKind = Literal["photo", "document", "unknown"]
else:
    SeenMediaKind = str  # open on the wire: a later kind (video, voice) reads as "unknown"


class Media(OpenEnums):
    """A file as a message carries it. ``kind``, ``mime``, ``width`` and ``height`` come
    from the server's look at the content, never from the client's word. ``thumb`` is the
    file id of a small JPEG preview (photos), readable by whoever may read the file."""

    open_fields = {"kind": "MediaKind"}

    kind: SeenMediaKind
    file_id: str
    name: str = ""
    size: int = 0
    mime: str = "application/octet-stream"
    width: int = 0
    height: int = 0
    thumb: str | None = None


# -- HTTP bodies ------------------------------------------------------------------------------
class CreateUpload(Struct):
    """``POST /media/uploads``."""

    size: FileSize
    name: FileName = ""
    part_size: PartSize = 8 * MIB
    kind: WantedKind = "auto"
    keep_location: bool = False  # photos: keep EXIF GPS (it is stripped otherwise)


class UploadStatus(Struct):
    """The answer to creating an upload and to ``GET /media/uploads/{id}``: which parts the
    server holds (durably), so that a client resumes with the others."""

    upload_id: str
    size: int
    part_size: int
    parts: int
    received: list[int] = []
    name: str = ""
    expires: float = 0.0
    file_id: str | None = None  # set once completed


#: users one upload may name as its readers (a one-to-one secret chat names one)
MAX_READERS = 8
ReaderId = Annotated[int, Meta(ge=1, le=2**62)]


class CompleteUpload(Struct):
    """``POST /media/uploads/{id}/complete`` (the body is optional). ``readers``: users who
    may read the file although no message the server sees carries it: the other person of
    a secret chat, whose message (with the file's key) is end-to-end encrypted. A file with
    readers is kept while they are (the collector never takes it)."""

    readers: Annotated[list[ReaderId], Meta(max_length=MAX_READERS)] = []


class PartReceived(Struct):
    part: int
    received: int  # parts held now


class ErrorBody(Struct):
    code: str
    message: str
    retry_after: float | None = None


def part_count(size: int, part_size: int) -> int:
    return -(-size // part_size)


def part_length(size: int, part_size: int, index: int) -> int:
    """The exact length part ``index`` (from 0) must have: all are ``part_size`` but the
    last, which holds what remains."""
    return min(part_size, size - index * part_size)
