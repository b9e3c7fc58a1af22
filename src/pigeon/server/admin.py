"""The operator's tools on the operator listener (issue 11): abuse reports, finding,
disabling and deleting accounts, and an online backup. ``pigeon admin ...`` on the server's
host calls these; they are never reachable from the public port.

The operator listener is loopback by default and takes a bearer token off loopback
(operator.py). Every request that changes something is a POST with a JSON body: a web page
the operator happens to open cannot send one (a cross-site form cannot set
``Content-Type: application/json`` without a CORS preflight, which this listener never
grants).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from pigeon.protocol.errors import PigeonError

from .services import Services

MAX_ADMIN_PAGE = 1000
DISABLED = "this account was disabled by the server's operator"
DELETED = "this account was deleted by the server's operator"


def _fail(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    if not (raw.isascii() and raw.isdigit()) or not 0 <= int(raw) <= high:
        raise web.HTTPBadRequest(text=f"{name} must be an integer from 0 to {high}")
    return int(raw)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    return body


def _services(request: web.Request) -> Services:
    return request.app["services"]  # type: ignore[no-any-return]


async def reports(request: web.Request) -> web.Response:
    after = _int(request, "after", 0, 2**62)
    limit = _int(request, "limit", 100, MAX_ADMIN_PAGE)
    rows = await _services(request).store.reports(after, limit)
    return web.json_response([r._asdict() for r in rows])


async def users(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 50, MAX_ADMIN_PAGE)
    try:
        found = await _services(request).store.find_users(request.query.get("q", ""), limit)
    except PigeonError as exc:
        return _fail(400, exc.code, exc.message)
    return web.json_response([
        {"id": u.id, "phone": u.phone, "name": u.name, "username": u.username,
         "disabled": disabled, "sessions": sessions} for u, disabled, sessions in found])


async def _act(request: web.Request, action: str) -> web.Response:
    services = _services(request)
    body = await _json_body(request)
    user_id = body.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 1 <= user_id <= 2**62:
        return _fail(400, "INVALID_ARGUMENT", "user_id must be a positive integer")
    try:
        if action == "delete":
            ended = await services.store.delete_user(user_id)
        else:
            ended = await services.store.set_disabled(user_id, action == "disable")
    except PigeonError as exc:
        return _fail(404 if exc.code == "USER_NOT_FOUND" else 403, exc.code, exc.message)
    # Its devices are cut off now, not at their next call.
    services.end_sessions(user_id, ended, DELETED if action == "delete" else DISABLED)
    answer: dict[str, int] = {"user_id": user_id, "sessions_ended": len(ended)}
    if action == "delete" and services.media is not None:
        # Its files and uploads go too (after the account, so no new upload can start).
        uploads, blobs = await services.media.forget_user(user_id)
        answer.update(uploads_removed=uploads, blobs_removed=blobs)
    return web.json_response(answer)


async def disable(request: web.Request) -> web.Response:
    return await _act(request, "disable")


async def enable(request: web.Request) -> web.Response:
    return await _act(request, "enable")


async def delete(request: web.Request) -> web.Response:
    return await _act(request, "delete")


async def backup(request: web.Request) -> web.Response:
    """Copy the database to ``path`` (absolute, a file that does not exist yet, written with
    the server's private umask) and the login-code key to ``path.key``: what
    ``pigeon admin restore`` brings back."""
    services = _services(request)
    body = await _json_body(request)
    raw = body.get("path")
    if not isinstance(raw, str) or not os.path.isabs(raw):
        return _fail(400, "INVALID_ARGUMENT", "path must be an absolute path")
    target = Path(raw)
    try:
        problem = await asyncio.to_thread(_unusable, target)
        if problem:
            return _fail(409, "CONFLICT", problem)
        await services.store.backup(str(target))
        await asyncio.to_thread(_write_private, key_path(target), services.secret)
        size = target.stat().st_size
    except OSError as exc:
        return _fail(500, "BACKUP_FAILED", f"cannot write {target}: {exc.strerror or exc}")
    return web.json_response({"path": str(target), "bytes": size,
                              "key": str(key_path(target))})


def key_path(backup: Path) -> Path:
    """Where a backup's copy of the login-code key goes: beside it."""
    return backup.with_name(backup.name + ".key")


def _unusable(target: Path) -> str | None:
    if target.exists() or key_path(target).exists():
        return f"{target} (or its .key) exists already: choose a new path"
    if not target.parent.is_dir():
        return f"{target.parent} is not a directory"
    return None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/admin/reports", reports)
    app.router.add_get("/admin/users", users)
    app.router.add_post("/admin/users/disable", disable)
    app.router.add_post("/admin/users/enable", enable)
    app.router.add_post("/admin/users/delete", delete)
    app.router.add_post("/admin/backup", backup)
