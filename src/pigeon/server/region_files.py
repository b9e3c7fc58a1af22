"""Files across regions (issue 12, deliverable 6; docs/architecture.md, "Regions"): the
recipient's region must serve the file of a message from another region itself, so before it
applies the message it fetches the bytes from the sender's region, over NATS request/reply
(``<prefix>.region.<name>.blob``) in chunks of at most ``BLOB_CHUNK``, checks them against
their SHA-256, and stores them in its own blob store. A sender's region that does not answer
leaves the message unacknowledged (it and what follows it wait, as for any failure); one that
answers "not found" (the file was collected since) has the message skipped.

The sender's region answers only for blobs of messages sent across regions
(:meth:`pigeon.store.region_api.RegionApi.crossed_blob`), and, for a file or a sticker its
member sends into a group of another region, on a subject of that call's own
(:func:`lend_blobs`), for those blobs only and while the call lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from pathlib import Path
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from pigeon.protocol.errors import InvalidArgument, NotFound, PigeonError, Unavailable
from pigeon.media.blobs import DIGEST
from pigeon.protocol.regions import BLOB_CHUNK, BlobAsk, BlobPart, encode

from .region_asks import read_ask

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("pigeon.regions")

CHUNK_TIMEOUT = 5.0  # seconds the sender's region has to answer one chunk


def blob_subject(prefix: str, region: str) -> str:
    return f"{prefix}.region.{region}.blob"


async def answer_blob(services: Services, msg: Any,
                      allowed: frozenset[str] | None = None) -> None:
    """One chunk of a blob sent to another region (or, on a call's own subject, one of the
    blobs ``allowed`` for it); a malformed ask gets no answer."""
    if (ask := read_ask(msg, BlobAsk, "blob request")) is None:
        return
    media = services.media
    try:
        path = None
        if media is not None and (ask.digest in allowed if allowed is not None
                                  else await services.store.crossed_blob(ask.digest)):
            path = await media.blobs.path(ask.digest)
        data = None if path is None else await asyncio.to_thread(
            _read, path, ask.offset, ask.length)
    except PigeonError:
        return  # the store failing: "not found" would be a lie; the asker retries
    except OSError as exc:
        log.error("regions: blob %s unreadable: %s", ask.digest, exc)
        return
    await msg.respond(encode(BlobPart(found=data is not None, data=data or b"")))


@contextlib.asynccontextmanager
async def lend_blobs(services: Services, nc: Any,
                     wanted: list[tuple[str, int]]) -> AsyncIterator[str]:
    """A subject, unguessable and under this region's blob subject, on which this node
    answers for the blobs of ``wanted`` only, until the block ends: the group's region
    fetches there what a member of this region sends into it (no other blob is lent)."""
    allowed = frozenset(digest for digest, _ in wanted)
    subject = (f"{blob_subject(services.settings.bus_prefix, services.settings.region)}"
               f".{secrets.token_hex(16)}")

    async def answer(msg: Any) -> None:
        await answer_blob(services, msg, allowed)

    sub = await nc.subscribe(subject, cb=answer)
    try:
        yield subject
    finally:
        await sub.unsubscribe()


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


async def fetch_files(services: Services, nc: Any, origin: str,
                      wanted: list[tuple[str, int]], subject: str | None = None) -> None:
    """Every blob of ``wanted`` (SHA-256, size) in this region's blob store (fetched from
    ``origin``, on ``subject`` if given, if it is not here yet). Unavailable: try again
    later; NotFound or InvalidArgument: never."""
    media = services.media
    if media is None:
        raise NotFound("this node keeps no files", code="FILE_NOT_FOUND")
    limit = services.settings.media_max_file_bytes
    for digest, size in wanted:
        if not DIGEST.match(digest):
            raise InvalidArgument(f"not a SHA-256 digest: {digest[:80]!r}")
        if await media.blobs.path(digest) is not None:
            continue
        if size > limit:
            raise InvalidArgument(f"a file of {size} bytes is over this region's limit")
        await _fetch(media.blobs, nc,
                     subject or blob_subject(services.settings.bus_prefix, origin), digest, size)


async def _fetch(blobs: Any, nc: Any, subject: str, expected: str, size: int) -> None:
    staged = blobs.scratch() / f"xr-{expected}-{secrets.token_hex(4)}"
    digest = hashlib.sha256()
    offset = 0
    try:
        await asyncio.to_thread(staged.write_bytes, b"")
        while offset < size:
            ask = BlobAsk(digest=expected, offset=offset, length=min(BLOB_CHUNK, size - offset))
            try:
                reply = await nc.request(subject, encode(ask), timeout=CHUNK_TIMEOUT)
                part = msgspec.msgpack.decode(reply.data, type=BlobPart)
            except (NatsTimeout, NoRespondersError, asyncio.TimeoutError):
                raise Unavailable("the file's region does not answer",
                                  code="REGION_UNAVAILABLE", retry_after=5) from None
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise Unavailable("the file's region answered nonsense",
                                  code="REGION_UNAVAILABLE", retry_after=5) from None
            if not part.found:
                raise NotFound(f"blob {expected} is gone from its region",
                               code="FILE_NOT_FOUND")
            if len(part.data) != ask.length:
                # the blob is shorter than the message says: asking again would not help
                raise InvalidArgument(f"blob {expected} is not {size} bytes long")
            digest.update(part.data)
            await asyncio.to_thread(_append, staged, part.data)
            offset += len(part.data)
        if digest.hexdigest() != expected:
            raise InvalidArgument(f"blob {expected}: its bytes do not match its SHA-256")
        # no fsync of its own: put() makes it durable before the message is applied
        await blobs.put(staged, (expected, size))
    finally:
        await asyncio.to_thread(staged.unlink, missing_ok=True)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)
