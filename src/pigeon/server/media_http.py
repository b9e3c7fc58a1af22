"""The HTTP media API on the server's port (docs/protocol.md, "Media over HTTP"): uploads in
parts, and ranged downloads. Every request carries the device's session token
(``Authorization: Bearer pgn_...``); errors are JSON ``{"code", "message"}`` with the codes
of protocol/errors.py and a fitting status.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import msgspec
from aiohttp import web

from pigeon.media.ranges import RangeNotSatisfiable, parse_range
from pigeon.protocol import limits
from pigeon.protocol.errors import (
    Conflict, Forbidden, InvalidArgument, NotFound, PigeonError, RateLimited, Unauthorized,
    Unavailable,
)
from pigeon.protocol.media import (
    FILE_ID, PART_HASH_HEADER, SHA256_HEX, CompleteUpload, CreateUpload, ErrorBody,
    PartReceived,
)
from pigeon.store.base import FileRecord

from .media_files import MediaService
from .services import Services
from .sessions import authenticate

Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]
READ_BYTES = 1 << 20       # a download is read from disk in pieces of this size
MAX_JSON_BYTES = 16 << 10  # the JSON bodies of this API are small
# Files are immutable (a file id always names the same bytes), but access is per person.
CACHE_CONTROL = "private, max-age=31536000, immutable"

_STATUS: list[tuple[type[PigeonError], int]] = [
    (InvalidArgument, 400), (Unauthorized, 401), (Forbidden, 403), (NotFound, 404),
    (Conflict, 409), (RateLimited, 429), (Unavailable, 503),
]
_STATUS_BY_CODE = {"FILE_TOO_LARGE": 413, "QUOTA_EXCEEDED": 413, "TOO_MANY_UPLOADS": 429,
                   "IMAGE_INVALID": 422, "IMAGE_TOO_LARGE": 422, "MEDIA_TYPE_MISMATCH": 415,
                   "RANGE_NOT_SATISFIABLE": 416}
_encode = msgspec.json.encode


def error_response(exc: PigeonError) -> web.Response:
    status = _STATUS_BY_CODE.get(exc.code) or next(
        (s for cls, s in _STATUS if isinstance(exc, cls)), 500)
    headers = {}
    if exc.retry_after:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    body = _encode(ErrorBody(code=exc.code, message=exc.message, retry_after=exc.retry_after))
    return web.Response(body=body, status=status, content_type="application/json",
                        headers=headers)


def _json(value: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


def _authenticated(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Who calls: the session of the bearer token, rate-limited as that device's calls. A
    request without a valid token is counted against its address, as other public HTTP."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        services: Services = request.app["services"]
        address: str = request["client"]
        try:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token or len(token) > limits.MAX_TOKEN_CHARS:
                _count_stranger(services, address)
                raise Unauthorized("send the session token: Authorization: Bearer <token>",
                                   code="AUTH_REQUIRED")
            try:
                session, user = await authenticate(services, token.strip())
            except Unauthorized:
                _count_stranger(services, address)
                raise
            services.shield.check_rate("media", address, user.id, session.id)
            guard = request.app["guards"].get(request.transport)
            if guard is not None:
                guard.logged_in()  # or `complete` of a 2 GiB file is cut off after 5 s
            return await handler(request, user.id)
        except PigeonError as exc:
            return error_response(exc)

    return wrapper


def _count_stranger(services: Services, address: str) -> None:
    wait = services.shield.check_http(address)
    if wait:
        raise RateLimited("too many HTTP requests; slow down", retry_after=round(wait, 2))


def _media(request: web.Request) -> MediaService:
    service: MediaService = request.app["media"]
    return service


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not FILE_ID.match(value):
        raise InvalidArgument(f"not a valid {name.replace('_', ' ')}: {value[:80]!r}",
                              code="INVALID_ARGUMENT")
    return value


async def _body(request: web.Request, kind: type[msgspec.Struct]) -> msgspec.Struct:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise InvalidArgument("request body too large", code="INVALID_ARGUMENT")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise InvalidArgument("request body too large", code="INVALID_ARGUMENT")
    try:
        return msgspec.json.decode(raw or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"bad request body: {exc}", code="INVALID_ARGUMENT") from None
    except msgspec.DecodeError:
        raise InvalidArgument("the request body is not JSON", code="INVALID_ARGUMENT") from None


# -- uploads ----------------------------------------------------------------------------------
@_authenticated
async def create_upload(request: web.Request, user_id: int) -> web.StreamResponse:
    params = await _body(request, CreateUpload)
    assert isinstance(params, CreateUpload)
    return _json(await _media(request).create(user_id, params), status=201)


@_authenticated
async def upload_status(request: web.Request, user_id: int) -> web.StreamResponse:
    return _json(await _media(request).status(user_id, _id(request, "upload_id")))


@_authenticated
async def put_part(request: web.Request, user_id: int) -> web.StreamResponse:
    media = _media(request)
    upload = await media.store.get_upload(_id(request, "upload_id"), user_id)
    raw_index = request.match_info["index"]
    if not raw_index.isdigit() or len(raw_index) > 6:
        raise InvalidArgument(f"not a part number: {raw_index[:20]!r}", code="PART_OUT_OF_RANGE")
    index = int(raw_index)
    length = media.check_part(upload, index)
    sha256 = request.headers.get(PART_HASH_HEADER, "").strip().lower()
    if not SHA256_HEX.match(sha256):
        raise InvalidArgument(f"send the part's SHA-256 (hex) in {PART_HASH_HEADER}",
                              code="INVALID_ARGUMENT")
    if request.content_length is not None and request.content_length != length:
        raise InvalidArgument(f"part {index} must be exactly {length} bytes, not "
                              f"{request.content_length}", code="PART_SIZE_MISMATCH")
    held = await media.put_part(upload, index, sha256, request.content.iter_any())
    return _json(PartReceived(part=index, received=held))


@_authenticated
async def complete_upload(request: web.Request, user_id: int) -> web.StreamResponse:
    params = await _body(request, CompleteUpload)
    assert isinstance(params, CompleteUpload)
    return _json(await _media(request).complete(user_id, _id(request, "upload_id"),
                                                params.readers))


@_authenticated
async def cancel_upload(request: web.Request, user_id: int) -> web.StreamResponse:
    await _media(request).cancel(user_id, _id(request, "upload_id"))
    return web.Response(status=204)


# -- downloads --------------------------------------------------------------------------------
@_authenticated
async def download(request: web.Request, user_id: int) -> web.StreamResponse:
    found, path = await _media(request).readable(user_id, _id(request, "file_id"))
    etag = f'"{found.digest}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Accept-Ranges": "bytes",
               "X-Content-Type-Options": "nosniff",
               "Content-Disposition": _disposition(found)}
    if _matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    first, last, status = 0, found.size - 1, 200
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted is not None and (if_range is None or if_range.strip() == etag):
        try:
            first, last = parse_range(wanted, found.size)
        except RangeNotSatisfiable as exc:
            error = error_response(InvalidArgument(str(exc), code="RANGE_NOT_SATISFIABLE"))
            error.headers["Content-Range"] = f"bytes */{found.size}"
            return error
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = found.mime
    response.content_length = last - first + 1
    await response.prepare(request)
    if request.method != "HEAD":
        await _send(response, path, first, last - first + 1)
    await response.write_eof()
    return response


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _disposition(found: FileRecord) -> str:
    kind = "inline" if found.kind in ("photo", "thumb") else "attachment"
    if not found.name:
        return kind
    return f"{kind}; filename*=UTF-8''{quote(found.name, safe='')}"


async def _send(response: web.StreamResponse, path: Path, offset: int, count: int) -> None:
    f = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(f.seek, offset)
        while count > 0:
            chunk = await asyncio.to_thread(f.read, min(READ_BYTES, count))
            if not chunk:
                break  # the blob is immutable; a short read means it went (collected)
            count -= len(chunk)
            await response.write(chunk)
    finally:
        await asyncio.to_thread(f.close)


def add_routes(app: web.Application, media: MediaService) -> None:
    app["media"] = media
    app.router.add_post("/media/uploads", create_upload)
    app.router.add_get("/media/uploads/{upload_id}", upload_status)
    app.router.add_delete("/media/uploads/{upload_id}", cancel_upload)
    app.router.add_put("/media/uploads/{upload_id}/parts/{index}", put_part)
    app.router.add_post("/media/uploads/{upload_id}/complete", complete_upload)
    app.router.add_get("/media/{file_id}", download)
