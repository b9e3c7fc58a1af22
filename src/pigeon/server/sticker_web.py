"""Stickers over plain HTTP, on the server's port (issue 10):

- ``POST /v1/stickers/<name>?emoji=E[&emoji=E2]``: add a sticker to the caller's set. The
  body is the source image (at most 5 MiB: a frame holds 64 KiB, hence HTTP), authenticated
  with the session token (``Authorization: Bearer <token>``). Answers the whole set as JSON,
  or ``{"code", "message"}`` with the status of the error's class.
- ``GET /stickers/files/<sha256>.webp``: a sticker's image, to anyone (sticker files are
  public), immutable: ``ETag`` is the digest, ``If-None-Match`` answers 304.
- ``GET /stickers/<name>``: the set's public page (:mod:`.sticker_page`).

Nothing blocks the loop: the image work runs in :class:`StickerWorkshop`'s threads, the disk
in the blob store's.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from pigeon.domain import stickers as rules
from pigeon.media.blobs import DIGEST, BlobStore, DiskBlobStore
from pigeon.media.stickers import MAX_SOURCE_BYTES, StickerWorkshop
from pigeon.protocol import errors
from pigeon.store.base import NewSticker

from .services import Services
from .sessions import authenticate
from .sticker_page import render_page

_STATUS: dict[type[errors.PigeonError], int] = {
    errors.InvalidArgument: 400, errors.Unauthorized: 401, errors.Forbidden: 403,
    errors.NotFound: 404, errors.Conflict: 409, errors.RateLimited: 429,
    errors.Unavailable: 503,
}
_IMMUTABLE = "public, max-age=31536000, immutable"
#: what adding a sticker costs in its session's and account's call budgets: decoding and
#: encoding an image is the work of many calls
ADD_COST = 10.0


def carries_token(request: web.Request) -> bool:
    """A sticker upload that brings a session token (charged after the token is checked)."""
    return (request.method == "POST" and request.path.startswith("/v1/stickers/")
            and request.headers.get("Authorization", "").startswith("Bearer "))


class StickerWeb:
    def __init__(self, services: Services, blobs: BlobStore | None = None,
                 workshop: StickerWorkshop | None = None,
                 blob_lock: asyncio.Lock | None = None) -> None:
        self.services = services
        self.blobs = blobs or DiskBlobStore(services.settings.data / "media")
        self.workshop = workshop or StickerWorkshop()
        # The media collector's lock (server/media_files.py): storing a blob and writing the
        # sticker row that uses it are one step for it, or it could delete the bytes of a
        # file it collects in between, which this sticker found already stored.
        self.blob_lock = blob_lock or asyncio.Lock()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/stickers/{name}", self.add)
        app.router.add_get("/stickers/files/{file}", self.file)
        app.router.add_get("/stickers/{name}", self.page)

    # -- adding a sticker -----------------------------------------------------------------
    async def add(self, request: web.Request) -> web.Response:
        try:
            return await self._add(request)
        except errors.PigeonError as exc:
            return _error(exc)

    async def _add(self, request: web.Request) -> web.Response:
        store = self.services.store
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise errors.Unauthorized("send the session token: Authorization: Bearer TOKEN",
                                      code="AUTH_REQUIRED")
        shield = self.services.shield
        address: str = request["client"]
        try:
            session, user = await authenticate(self.services, token)
        except errors.Unauthorized:
            # A wrong token pays as any anonymous request does (the middleware let it by).
            if carries_token(request) and (wait := shield.check_http(address)):
                raise errors.RateLimited("too many HTTP requests; slow down",
                                         retry_after=round(wait, 2)) from None
            raise
        shield.check_rate("stickers.add", address, user.id, session.id, cost=ADD_COST)
        guard = request.app["guards"].get(request.transport)
        if guard is not None:
            guard.logged_in()  # or a 5 MiB upload on a slow link would be cut off
        name = rules.set_name(request.match_info["name"])
        emoji = rules.emoji_list(request.query.getall("emoji", []))
        # Refused before reading or decoding anything: someone else's set, a full one.
        found = await store.get_sticker_set(user.id, name)
        row = rules.SetRow(0, found.info.author_id, found.info.published, len(found.stickers))
        rules.owned_set(row, name, user.id)
        rules.check_room(row)
        source = await _read_body(request)
        made = await self.workshop.normalise(source)
        async with self.blob_lock:
            digest, size = await self._store(made.data)
            whole = await store.add_sticker(user.id, name, NewSticker(
                digest, emoji, made.width, made.height, made.animated, size))
        return web.Response(body=msgspec.json.encode(whole), content_type="application/json")

    async def _store(self, data: bytes) -> tuple[str, int]:
        scratch = self.blobs.scratch() / f"sticker-{secrets.token_hex(8)}.webp"
        await asyncio.to_thread(scratch.write_bytes, data)
        try:
            return await self.blobs.put(scratch)
        finally:
            await asyncio.to_thread(scratch.unlink, missing_ok=True)

    # -- serving ----------------------------------------------------------------------------
    async def file(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["file"].removesuffix(".webp")
        if not DIGEST.match(digest) or not await self.services.store.sticker_file_public(digest):
            raise web.HTTPNotFound(text="no such sticker\n")
        etag = f'"{digest}"'
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE,
                   "X-Content-Type-Options": "nosniff"}
        if etag in _tags(request.headers.get("If-None-Match", "")):
            return web.Response(status=304, headers=headers)
        where = await self.blobs.path(digest)
        if where is None:
            raise web.HTTPNotFound(text="no such sticker\n")
        body = await asyncio.to_thread(Path.read_bytes, where)
        return web.Response(body=body, content_type="image/webp", headers=headers)

    async def page(self, request: web.Request) -> web.Response:
        try:
            name = rules.set_name(request.match_info["name"])
            whole = await self.services.store.get_sticker_set(None, name)
        except (errors.InvalidArgument, errors.NotFound):
            raise web.HTTPNotFound(text="no such sticker set\n") from None
        return web.Response(
            text=render_page(whole), content_type="text/html", charset="utf-8",
            headers={"Cache-Control": "public, max-age=60",
                     # The page shows user input: no script runs on it, whatever it holds.
                     "Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                                                "style-src 'unsafe-inline'",
                     "X-Content-Type-Options": "nosniff"})


def _tags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


async def _read_body(request: web.Request) -> bytes:
    """The request body, refused (IMAGE_TOO_LARGE) past MAX_SOURCE_BYTES without reading on:
    aiohttp's own client_max_size is a frame's, far too small, and is not applied to a
    body read as a stream."""
    declared = request.content_length
    if declared is not None and declared > MAX_SOURCE_BYTES:
        raise errors.InvalidArgument(f"the image is {declared} bytes, at most "
                                     f"{MAX_SOURCE_BYTES}", code="IMAGE_TOO_LARGE")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_SOURCE_BYTES:
            raise errors.InvalidArgument(f"the image is over {MAX_SOURCE_BYTES} bytes",
                                         code="IMAGE_TOO_LARGE")
        chunks.append(chunk)
    if not size:
        raise errors.InvalidArgument("send the image as the request's body",
                                     code="IMAGE_INVALID")
    return b"".join(chunks)


def _error(exc: errors.PigeonError) -> web.Response:
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    headers = {}
    if exc.retry_after is not None:
        body["retry_after"] = exc.retry_after
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if status == 413 or exc.code == "IMAGE_TOO_LARGE":
        status = 413
    response = web.json_response(body, status=status, headers=headers)
    if status == 413:
        response.force_close()  # the rest of a body we did not read stays unread
    return response
