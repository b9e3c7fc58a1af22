"""Media: who may read a file, what an upload may be, and when a file is garbage.

A file is readable by its uploader and by the members of the chats it was sent to who see
the message that carries it (they joined before it, and it is not deleted for everyone);
by the users its uploader named as readers (the other person of a secret chat, where the
server sees no message; the file is ciphertext whose key travels end to end); by nobody
else. A removed member is no longer a member, so no longer reads it. A thumbnail is
readable by whoever reads its photo. A backend reads the rows these rules take, inside its
transaction, and applies them; it decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pigeon.protocol.characters import describe, first_hidden
from pigeon.protocol.errors import Conflict, InvalidArgument, NotFound
from pigeon.protocol.media import MAX_FILE_NAME_CHARS, MAX_PARTS, part_count


class UploadLimits(NamedTuple):
    """The settings an upload is checked against (server/settings.py)."""

    max_file_bytes: int
    quota_bytes: int        # what one account may store in all (files and uploads in flight)
    max_in_flight: int      # uploads one account may have open at once


class Usage(NamedTuple):
    """What an account holds: bytes of its files, and its uploads not yet completed."""

    stored_bytes: int
    in_flight: int
    in_flight_bytes: int


class Sighting(NamedTuple):
    """A message carrying the file, in a chat the reader is a member of."""

    message_id: int
    deleted: bool
    history_from: int  # the reader sees the messages after this id


def check_new_upload(size: int, part_size: int, usage: Usage, limits: UploadLimits) -> None:
    if size > limits.max_file_bytes:
        raise InvalidArgument(f"a file may be at most {limits.max_file_bytes} bytes",
                              code="FILE_TOO_LARGE")
    if part_count(size, part_size) > MAX_PARTS:
        raise InvalidArgument(f"at most {MAX_PARTS} parts: use larger parts",
                              code="INVALID_ARGUMENT")
    if usage.in_flight >= limits.max_in_flight:
        raise Conflict(f"at most {limits.max_in_flight} uploads at once: finish or cancel "
                       "one first", code="TOO_MANY_UPLOADS")
    if usage.stored_bytes + usage.in_flight_bytes + size > limits.quota_bytes:
        free = max(0, limits.quota_bytes - usage.stored_bytes - usage.in_flight_bytes)
        raise Conflict(f"this would exceed your storage quota ({free} bytes free)",
                       code="QUOTA_EXCEEDED")


def check_part(index: int, size: int, part_size: int) -> None:
    parts = part_count(size, part_size)
    if not 0 <= index < parts:
        raise InvalidArgument(f"this upload has parts 0 to {parts - 1}, not {index}",
                              code="PART_OUT_OF_RANGE")


def file_name(raw: str) -> str:
    """The name a file is shown under: its last path component; refused if it holds a
    control, bidi or invisible character (it is shown to others, as a name is)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()  # the last path part only
    if len(name) > MAX_FILE_NAME_CHARS:
        raise InvalidArgument(f"a file name has at most {MAX_FILE_NAME_CHARS} characters",
                              code="FILE_NAME_INVALID")
    hidden = first_hidden(name)
    if hidden is not None:
        raise InvalidArgument(f"a file name may not contain control, bidi or invisible "
                              f"characters (found {describe(hidden)})", code="FILE_NAME_INVALID")
    return name


def caption(text: str) -> str:
    """A media message's text: optional, so it may be empty; NUL refused as in any text."""
    if "\x00" in text:
        raise InvalidArgument("text may not contain NUL characters", code="TEXT_INVALID")
    return text


def may_read(owner_id: int, reader_id: int, sightings: Iterable[Sighting],
             named: bool = False) -> bool:
    """``named``: the uploader named the reader (a secret chat's other person)."""
    if owner_id == reader_id or named:
        return True
    return any(not s.deleted and s.message_id > s.history_from for s in sightings)


def readers(owner_id: int, named: Iterable[int]) -> list[int]:
    """The users an upload names as its readers, once each, without the uploader (who
    reads it anyway). The server cannot check them against a secret chat it never sees;
    naming someone lets them read ciphertext whose key only the message gives."""
    return sorted({r for r in named if r != owner_id})


def no_file(file_id: str) -> NotFound:
    # Alike for a file that does not exist and one the caller may not read: ids are
    # unguessable, and which ones exist is nobody's business.
    return NotFound(f"no file {file_id}, or not one you may read", code="FILE_NOT_FOUND")


def no_upload(upload_id: str) -> NotFound:
    return NotFound(f"no upload {upload_id} (it expired, or is someone else's)",
                    code="UPLOAD_NOT_FOUND")


def collectable(referenced: bool, created: float, now: float, grace: float) -> bool:
    """Whether a file may be removed: no message refers to it, and it is older than the
    grace period that lets an uploader send what they just uploaded."""
    return not referenced and created < now - grace


def blob_unused(files: int, stickers: int) -> bool:
    """Whether a blob may be deleted: no file and no sticker uses its bytes. The store is
    content-addressed, so the same bytes may be a media file and a sticker at once (an artist
    who sent their sticker's WebP as a file): dropping the file must leave the sticker."""
    return files == 0 and stickers == 0
