"""Media on the server: uploads in parts, completing them into files, finding a file for a
reader, and collecting what nobody needs any more. The HTTP layer (media_http.py) only moves
bytes and answers; the rules are :mod:`pigeon.domain.media`'s.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from pigeon.domain import media as rules
from pigeon.media.pillow import allow_pixels
from pigeon.media import parts as disk
from pigeon.media.blobs import BlobStore
from pigeon.media.ingest import ingest
from pigeon.protocol.errors import Conflict, Unavailable
from pigeon.protocol.media import (
    CreateUpload, Media, UploadStatus, part_count, part_length,
)
from pigeon.store import Store
from pigeon.store.base import FileRecord, UploadRecord

from .settings import Settings

log = logging.getLogger("pigeon.media")

COLLECT_STEP = 200  # uploads or files removed per store call: small steps behind users' writes


def new_id() -> str:
    """A file or upload id: URL-safe base64, never with a leading "-", which command lines
    (``pigeon download ID``) and many tools read as an option."""
    while (value := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return value


def media_of(f: FileRecord) -> Media:
    # kind: a stored string; Media checks it on build (an unknown one reads "unknown")
    return Media(kind=f.kind, file_id=f.id, name=f.name,  # type: ignore[arg-type]
                 size=f.size, mime=f.mime, width=f.width, height=f.height, thumb=f.thumb)


class MediaService:
    def __init__(self, settings: Settings, store: Store, blobs: BlobStore, clock: object) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.limits = rules.UploadLimits(settings.media_max_file_bytes,
                                         settings.media_quota_bytes, settings.media_max_uploads)
        allow_pixels(settings.media_max_pixels)  # Pillow's backstop never below the setting
        self._locks: dict[str, asyncio.Lock] = {}
        # Completing an upload and collecting garbage both decide whether a blob exists:
        # one at a time, or a blob could be deleted under a file that was just stored.
        self.blob_lock = asyncio.Lock()

    def _now(self) -> float:
        return float(self.clock())  # type: ignore[operator]

    def _lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def _dir(self, upload_id: str) -> Path:
        return disk.upload_dir(self.blobs.scratch(), upload_id)

    # -- uploads ------------------------------------------------------------------------------
    async def create(self, user_id: int, p: CreateUpload) -> UploadStatus:
        upload = UploadRecord(id=new_id(), user_id=user_id, size=p.size,
                              name=rules.file_name(p.name), part_size=p.part_size, kind=p.kind,
                              keep_location=p.keep_location, created=self._now())
        await self.store.create_upload(upload, self.limits)
        return await self.status(user_id, upload.id)

    async def status(self, user_id: int, upload_id: str) -> UploadStatus:
        upload = await self.store.get_upload(upload_id, user_id)
        held = await asyncio.to_thread(disk.received, self._dir(upload_id))
        return UploadStatus(upload_id=upload.id, size=upload.size, part_size=upload.part_size,
                            parts=part_count(upload.size, upload.part_size),
                            received=sorted(held), name=upload.name,
                            expires=upload.created + self.settings.media_upload_ttl,
                            file_id=upload.file_id)

    def check_part(self, upload: UploadRecord, index: int) -> int:
        """The length part ``index`` must have, or PART_OUT_OF_RANGE / UPLOAD_NOT_FOUND."""
        if upload.file_id is not None:
            raise Conflict("this upload is already complete", code="PART_EXISTS")
        rules.check_part(index, upload.size, upload.part_size)
        return part_length(upload.size, upload.part_size, index)

    async def put_part(self, upload: UploadRecord, index: int, sha256: str,
                       body: AsyncIterator[bytes]) -> int:
        """Store part ``index``; returns how many parts are held now."""
        length = self.check_part(upload, index)
        await disk.receive_part(body, self._dir(upload.id), index, length, sha256,
                                self._lock(upload.id))
        return len(await asyncio.to_thread(disk.received, self._dir(upload.id)))

    async def complete(self, user_id: int, upload_id: str,
                       readers: list[int] | None = None) -> Media:
        async with self._lock(upload_id):
            upload = await self.store.get_upload(upload_id, user_id)
            if upload.file_id is not None:  # a repeated complete, its answer lost
                return media_of(await self.store.readable_file(user_id, upload.file_id))
            directory = self._dir(upload_id)
            parts = part_count(upload.size, upload.part_size)
            held = await asyncio.to_thread(disk.received, directory)
            missing = [i for i in range(parts) if i not in held]
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                raise Conflict(f"{len(missing)} part(s) missing: {shown}",
                               code="UPLOAD_INCOMPLETE")
            files = await self._ingest(upload, directory, parts, readers or [])
            await asyncio.to_thread(disk.remove, directory)
        self._locks.pop(upload_id, None)
        return media_of(files[0])

    async def _ingest(self, upload: UploadRecord, directory: Path, parts: int,
                      readers: list[int]) -> list[FileRecord]:
        scratch = self.blobs.scratch()
        whole, thumb = scratch / f"whole-{upload.id}", scratch / f"thumb-{upload.id}"
        try:
            hashed = await asyncio.to_thread(disk.assemble, directory, parts, whole)
            try:
                found = await asyncio.to_thread(ingest, whole, upload.kind, upload.keep_location,
                                                thumb, self.settings.media_max_pixels)
            except Exception:
                # Refused content is final: the upload goes, and with it its quota.
                await self.store.delete_uploads([upload.id])
                await asyncio.to_thread(disk.remove, directory)
                raise
            now = self._now()
            async with self.blob_lock:
                main_id, files = new_id(), []
                if found.thumb:
                    digest, size = await self.blobs.put(thumb)
                    files.append(FileRecord(id=new_id(), owner_id=upload.user_id, digest=digest,
                                            size=size, name="thumb.jpg", mime="image/jpeg",
                                            kind="thumb", created=now, parent=main_id))
                digest, size = await self.blobs.put(whole,
                                                    None if found.rewritten else hashed)
                main = FileRecord(id=main_id, owner_id=upload.user_id, digest=digest, size=size,
                                  name=upload.name, mime=found.mime, kind=found.kind,
                                  created=now, width=found.width, height=found.height,
                                  thumb=files[0].id if files else None)
                await self.store.finish_upload(upload.id, [main, *files], readers)
            return [main, *files]
        except OSError as exc:
            # A full or failing disk: the parts are kept, so a later complete can succeed.
            log.error("completing upload %s failed: %s", upload.id, exc)
            raise Unavailable("the server could not store this file (its disk may be full); "
                              "try completing it again later", code="STORAGE_FAILED") from None
        finally:
            for path in (whole, thumb):
                await asyncio.to_thread(path.unlink, missing_ok=True)

    async def cancel(self, user_id: int, upload_id: str) -> None:
        await self.store.get_upload(upload_id, user_id)
        async with self._lock(upload_id):
            await self.store.delete_uploads([upload_id])
            await asyncio.to_thread(disk.remove, self._dir(upload_id))
        self._locks.pop(upload_id, None)

    # -- downloads ----------------------------------------------------------------------------
    async def readable(self, user_id: int, file_id: str) -> tuple[FileRecord, Path]:
        found = await self.store.readable_file(user_id, file_id)
        path = await self.blobs.path(found.digest)
        if path is None:
            raise rules.no_file(file_id)
        return found, path

    # -- garbage ------------------------------------------------------------------------------
    async def collect(self) -> tuple[int, int]:
        """Remove uploads older than the upload TTL and files no message refers to past the
        grace period; returns (uploads, blobs) removed."""
        now = self._now()
        uploads = 0
        while expired := await self.store.expired_uploads(
                now - self.settings.media_upload_ttl, COLLECT_STEP):
            for upload in expired:
                await asyncio.to_thread(disk.remove, self._dir(upload.id))
            await self.store.delete_uploads([u.id for u in expired])
            uploads += len(expired)
        blobs = 0
        while True:
            async with self.blob_lock:
                removed, digests = await self.store.collect_files(
                    now - self.settings.media_file_grace, COLLECT_STEP)
                for digest in digests:
                    await self.blobs.delete(digest)
            blobs += len(digests)
            if removed < COLLECT_STEP:
                break
        return uploads, blobs

    async def forget_user(self, user_id: int) -> tuple[int, int]:
        """A deleted account's files and uploads in progress go: their rows, then the
        blobs nothing else uses (the same bytes may be another's file or a sticker) and the
        parts on disk. Returns (uploads, blobs) removed. Run after the account is deleted; if
        the server stops half-way, deleting the account again finishes it."""
        uploads = blobs = 0
        while True:
            async with self.blob_lock:
                gone, digests, removed = await self.store.delete_user_media(user_id,
                                                                             COLLECT_STEP)
                for digest in digests:
                    await self.blobs.delete(digest)
            for upload_id in gone:
                async with self._lock(upload_id):
                    await asyncio.to_thread(disk.remove, self._dir(upload_id))
                self._locks.pop(upload_id, None)
            uploads += len(gone)
            blobs += len(digests)
            if removed < COLLECT_STEP:
                return uploads, blobs

    async def collect_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.media_collect_every)
            try:
                await self.collect()
            except Exception:  # retried at the next round
                log.exception("collecting media failed")

