"""Uploading and downloading files over the server's HTTP media API (docs/protocol.md,
"Media over HTTP"), with the device's session token.

An upload goes in parts, each with its SHA-256; what was started is remembered in the
profile (``uploads.json``), so that a dropped connection or a restarted process resumes with
the parts the server does not hold yet. A download writes ``PATH.part`` and resumes it with a
Range request, checked against the file's ETag (its SHA-256) before it becomes ``PATH``.
Reading and writing files runs in threads; only the network is on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec

from pigeon.protocol.errors import PigeonError, error_from_wire
from pigeon.protocol.media import (
    MIB, PART_HASH_HEADER, CompleteUpload, CreateUpload, ErrorBody, Media, UploadStatus,
    part_length,
)

from .profile import write_private

if TYPE_CHECKING:
    from .client import Client

UPLOADS_FILE = "uploads.json"
DEFAULT_PART_BYTES = 8 * MIB
READ_BYTES = 1 << 20
PART_ATTEMPTS = 4  # tries of one part across dropped connections, before giving up
Progress = Callable[[int], None]  # called with the bytes done since the last call


def http_base(ws_url: str) -> str:
    url = ws_url.removesuffix("/v1/ws")
    if url.startswith("wss://"):
        return "https://" + url[6:]
    return "http://" + url.removeprefix("ws://")


class MediaError(PigeonError):
    """Raised by the SDK when the server answered a media request with an error it sent no
    code for (a proxy in between, say)."""


class Files:
    """``client.files``: upload and download."""

    def __init__(self, client: Client) -> None:
        self._client = client

    # -- plumbing -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        token = self._client.profile.token
        if token is None:
            raise PigeonError("log in first", code="AUTH_REQUIRED")
        return {"Authorization": f"Bearer {token}"}

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self._client._tls())
        return aiohttp.ClientSession(base_url=http_base(self._client.url) + "/",
                                     connector=connector, headers=self._headers(),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=120))

    @staticmethod
    async def _check(response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        raw = await response.read()
        try:
            body = msgspec.json.decode(raw, type=ErrorBody)
        except msgspec.MsgspecError:
            raise MediaError(f"HTTP {response.status}: {raw[:200]!r}",
                             code="UNAVAILABLE") from None
        raise error_from_wire(body.code, body.message, body.retry_after)

    # -- uploads ------------------------------------------------------------------------------
    def _saved(self) -> dict[str, Any]:
        directory = self._client.profile.directory
        if directory is None:
            return {}
        try:
            saved = json.loads((directory / UPLOADS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save(self, saved: dict[str, Any]) -> None:
        directory = self._client.profile.directory
        if directory is not None:
            write_private(directory / UPLOADS_FILE, json.dumps(saved).encode())

    async def upload(self, path: Path | str, *, kind: str = "auto", keep_location: bool = False,
                     part_size: int = DEFAULT_PART_BYTES, progress: Progress | None = None,
                     readers: list[int] | None = None) -> Media:
        """Upload ``path``; returns the file as a message would carry it (send it with
        ``client.messages.send(chat_id, caption, media=media.file_id)``). ``readers``:
        users who may read it though no message the server sees carries it (a secret
        chat's peer: ``client.secret.send_file`` encrypts the file first)."""
        path = Path(path)
        st = await asyncio.to_thread(path.stat)
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{kind}|{keep_location}"
        async with self._session() as http:
            status = await self._resume(http, key)
            if status is None:
                params = CreateUpload(size=st.st_size, name=path.name, part_size=part_size,
                                      kind=kind, keep_location=keep_location)  # type: ignore[arg-type]
                async with http.post("media/uploads", data=msgspec.json.encode(params),
                                     headers={"Content-Type": "application/json"}) as response:
                    await self._check(response)
                    status = msgspec.json.decode(await response.read(), type=UploadStatus)
                saved = self._saved()
                saved[key] = status.upload_id
                await asyncio.to_thread(self._save, saved)
            held = set(status.received)
            if progress is not None:
                progress(sum(part_length(status.size, status.part_size, i) for i in held))
            for index in range(status.parts):
                if index not in held:
                    await self._put_part(http, path, status, index, progress)
            media = await self._complete(http, status.upload_id,
                                         CompleteUpload(readers=readers or []))
        saved = self._saved()
        saved.pop(key, None)
        await asyncio.to_thread(self._save, saved)
        return media

    async def _complete(self, http: aiohttp.ClientSession, upload_id: str,
                        params: CompleteUpload) -> Media:
        # Completing a large file (assembly, hashing, fsync) may outlast the connection: the
        # server finishes it anyway, and a repeated complete answers the same file.
        for attempt in range(PART_ATTEMPTS):
            try:
                async with http.post(f"media/uploads/{upload_id}/complete",
                                     data=msgspec.json.encode(params),
                                     headers={"Content-Type": "application/json"}) as response:
                    await self._check(response)
                    return msgspec.json.decode(await response.read(), type=Media)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if attempt == PART_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _resume(self, http: aiohttp.ClientSession, key: str) -> UploadStatus | None:
        upload_id = self._saved().get(key)
        if not isinstance(upload_id, str):
            return None
        async with http.get(f"media/uploads/{upload_id}") as response:
            if response.status == 404:
                return None  # expired, or cleaned up: start again
            await self._check(response)
            return msgspec.json.decode(await response.read(), type=UploadStatus)

    async def _put_part(self, http: aiohttp.ClientSession, path: Path, status: UploadStatus,
                        index: int, progress: Progress | None) -> None:
        length = part_length(status.size, status.part_size, index)
        data = await asyncio.to_thread(_read_part, path, index * status.part_size, length)
        digest = hashlib.sha256(data).hexdigest()
        url = f"media/uploads/{status.upload_id}/parts/{index}"
        for attempt in range(PART_ATTEMPTS):
            try:
                async with http.put(url, data=data,
                                    headers={PART_HASH_HEADER: digest}) as response:
                    await self._check(response)
                break
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if attempt == PART_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5 * 2 ** attempt)
        if progress is not None:
            progress(length)

    # -- downloads ----------------------------------------------------------------------------
    async def download(self, file_id: str, out: Path | str,
                       progress: Progress | None = None,
                       total: Callable[[int], None] | None = None) -> Path:
        """Download a file to ``out``, resuming ``out.part`` if an earlier try left one.
        ``total`` is told the file's size once known."""
        out = Path(out)
        partial = out.with_name(out.name + ".part")
        tag_file = out.with_name(out.name + ".part.etag")
        have = partial.stat().st_size if partial.exists() else 0
        etag = tag_file.read_text().strip() if have and tag_file.exists() else None
        headers = {"Range": f"bytes={have}-", "If-Range": etag} if etag else {}
        async with self._session() as http, \
                http.get(f"media/{file_id}", headers=headers) as response:
            if response.status == 416 and etag:
                pass  # the part file was already whole: nothing more to fetch
            else:
                await self._check(response)
                etag = response.headers.get("ETag", "")
                append = response.status == 206
                size = (have if append else 0) + (response.content_length or 0)
                if total is not None:
                    total(size)
                if not append:
                    have = 0
                await asyncio.to_thread(tag_file.write_text, etag)
                if progress is not None and have:
                    progress(have)
                f = await asyncio.to_thread(partial.open, "ab" if append else "wb")
                try:
                    async for chunk in response.content.iter_chunked(READ_BYTES):
                        await asyncio.to_thread(f.write, chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    await asyncio.to_thread(f.close)
        digest = await asyncio.to_thread(file_sha256, partial)
        if etag and etag.strip('"') != digest:
            await asyncio.to_thread(partial.unlink)
            raise MediaError("the download does not match the file's SHA-256; try again",
                             code="UNAVAILABLE")
        await asyncio.to_thread(os.replace, partial, out)
        await asyncio.to_thread(tag_file.unlink, missing_ok=True)
        return out


def _read_part(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(length)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(READ_BYTES):
            h.update(chunk)
    return h.hexdigest()
