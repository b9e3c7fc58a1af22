"""Files stored by their content: the bytes of a file live once, under their SHA-256.

:class:`BlobStore` is the interface uploads, downloads and stickers use, so that an object
store (S3-compatible) can take the disk's place later; :class:`DiskBlobStore` is the
default, under ``<data>/media``. A blob is durable before :meth:`BlobStore.put` returns
(written to a temporary file, fsynced, renamed, the directory fsynced), so an upload is
acknowledged only once its bytes survive a crash. Disk work runs in a thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

#: a blob's name: its SHA-256, lowercase hex
DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class BlobStore(Protocol):
    async def put(self, source: Path, known: tuple[str, int] | None = None) -> tuple[str, int]:
        """Store the bytes of ``source`` (which is consumed: moved or deleted); returns
        their SHA-256 and size. The same bytes stored twice are kept once. ``known``: the
        digest and size the caller computed while writing ``source`` (not read again)."""

    async def path(self, digest: str) -> Path | None:
        """Where to read a blob from (for ranged sends), or None if it is not stored."""

    async def delete(self, digest: str) -> None:
        """Remove a blob (the collector, once no message or sticker refers to it)."""

    def scratch(self) -> Path:
        """A directory for files being assembled, on the same file system as the blobs."""


class DiskBlobStore:
    """Blobs as files ``<root>/ab/cd/<sha256>``; parts in progress under ``<root>/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)

    def scratch(self) -> Path:
        return self.root / "tmp"

    def _where(self, digest: str) -> Path:
        if not DIGEST.match(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    async def put(self, source: Path, known: tuple[str, int] | None = None) -> tuple[str, int]:
        return await asyncio.to_thread(self._put, source, known)

    def _put(self, source: Path, known: tuple[str, int] | None) -> tuple[str, int]:
        digest, size = known or file_digest(source)
        target = self._where(digest)
        if target.exists():
            source.unlink(missing_ok=True)
            return digest, size
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = target.parent / f".{digest}.{secrets.token_hex(4)}"
        os.replace(source, staged)
        _fsync_file(staged)
        os.replace(staged, target)
        _fsync_dir(target.parent)
        return digest, size

    async def path(self, digest: str) -> Path | None:
        where = self._where(digest)
        return where if await asyncio.to_thread(where.exists) else None

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self._where(digest).unlink, missing_ok=True)


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks (a 2 GiB file is never in memory)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
