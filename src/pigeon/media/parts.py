"""The parts of an upload on disk, in the blob store's scratch directory.

Each part received whole, with the length and SHA-256 it was announced with, is a file
``<scratch>/up-<upload id>/<index>.<sha256>``, fsynced and renamed into place before the
part is acknowledged: the directory listing *is* the upload's state, so it survives a
restart of the server as well as of the client. A part is streamed to disk in chunks as it
arrives (a part is never held in memory whole, nor a file). Completing concatenates the
parts into one file, hashing it on the way, which the blob store then takes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from pigeon.protocol.errors import Conflict, InvalidArgument

_PART = re.compile(r"^(\d{1,6})\.([0-9a-f]{64})$")
WRITE_BYTES = 1 << 20  # bytes gathered before one write (in a thread)


def upload_dir(scratch: Path, upload_id: str) -> Path:
    return scratch / f"up-{upload_id}"


def received(directory: Path) -> dict[int, str]:
    """The parts held: index -> SHA-256. Blocking: call in a thread."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    found: dict[int, str] = {}
    for name in names:
        if m := _PART.match(name):
            found[int(m[1])] = m[2]
    return found


async def receive_part(body: AsyncIterator[bytes], directory: Path, index: int, length: int,
                       sha256: str, lock: asyncio.Lock) -> bool:
    """Stream one part from ``body`` to disk and keep it if its length and hash are right.
    Returns False when the same part (same hash) was already held; PART_EXISTS if a
    different one was; PART_SIZE_MISMATCH / PART_HASH_MISMATCH (nothing kept) otherwise."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{index}.{secrets.token_hex(6)}"
    digest = hashlib.sha256()
    size = 0
    f = await asyncio.to_thread(open, tmp, "wb")
    try:
        pending = bytearray()
        async for chunk in body:
            size += len(chunk)
            if size > length:
                raise _wrong_length(index, length, "more")
            pending += chunk
            if len(pending) >= WRITE_BYTES:
                await asyncio.to_thread(_write, f, digest, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(_write, f, digest, bytes(pending))
        if size < length:
            raise _wrong_length(index, length, f"only {size}")
        if digest.hexdigest() != sha256:
            raise InvalidArgument(f"part {index} does not match its SHA-256; send it again",
                                  code="PART_HASH_MISMATCH")
        await asyncio.to_thread(_sync_close, f)
        async with lock:  # one decision at a time per upload: two copies of a part race here
            return await asyncio.to_thread(_keep, tmp, directory, index, sha256)
    finally:
        if not f.closed:
            await asyncio.to_thread(f.close)
        await asyncio.to_thread(tmp.unlink, missing_ok=True)


def _wrong_length(index: int, length: int, got: str) -> InvalidArgument:
    return InvalidArgument(f"part {index} must be exactly {length} bytes; {got} came",
                           code="PART_SIZE_MISMATCH")


def _write(f: object, digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    f.write(data)  # type: ignore[attr-defined]


def _sync_close(f: object) -> None:
    f.flush()  # type: ignore[attr-defined]
    os.fsync(f.fileno())  # type: ignore[attr-defined]
    f.close()  # type: ignore[attr-defined]


def _keep(tmp: Path, directory: Path, index: int, sha256: str) -> bool:
    held = received(directory).get(index)
    if held == sha256:
        return False
    if held is not None:
        raise Conflict(f"part {index} was already received with other content",
                       code="PART_EXISTS")
    os.replace(tmp, directory / f"{index}.{sha256}")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)  # the rename itself survives a crash before the part is acknowledged
    finally:
        os.close(fd)
    return True


def assemble(directory: Path, parts: int, out: Path) -> tuple[str, int]:
    """Join parts 0..parts-1 into ``out`` and return the whole's SHA-256 and size, in one
    pass: each byte is read once, hashed and written (the blob store then takes the digest
    as it is instead of reading 2 GiB again). A single part is the whole: it is linked, not
    copied, and its name holds its hash (nothing rewrites a file in place: a photo whose
    location is stripped is written anew and renamed). Blocking: call in a thread. The blob
    store fsyncs ``out`` when it takes it."""
    held = received(directory)
    if parts == 1:
        part = directory / f"0.{held[0]}"
        out.unlink(missing_ok=True)
        os.link(part, out)
        return held[0], part.stat().st_size
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(WRITE_BYTES)
    view = memoryview(buffer)
    with out.open("wb") as target:
        for index in range(parts):
            with (directory / f"{index}.{held[index]}").open("rb", buffering=0) as part:
                while n := part.readinto(buffer):
                    digest.update(view[:n])  # hashlib lets go of the GIL for large updates
                    target.write(view[:n])
                    size += n
    return digest.hexdigest(), size


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
