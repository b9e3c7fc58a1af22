"""The operator listener: /metrics, /shield, a detailed /healthz and the operator's tools
(/admin/...: admin.py), away from the public port.

On the public port these cost an attacker nothing and us a lot (eight keep-alive connections
scraping /metrics took 81% of a core), and /shield tells him how the defence is tuned (issue
7, finding 17). They are served on ``operator_listen`` instead, loopback by default. With
``operator_token`` set every request needs ``Authorization: Bearer <token>``; a non-loopback
``operator_listen`` refuses to start without one (settings.py). Only the token's SHA-256 is
kept, and it is compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pigeon import __version__

from .admin import add_admin_routes
from .services import Services
from .settings import is_loopback, split_listen

__all__ = ["build_operator_app", "start_operator"]


async def _healthz(request: web.Request) -> web.Response:
    services: Services = request.app["services"]
    bus = services.bus.health()
    store = await store_reachable(services)
    status = "down" if not store else "ok" if bus["connected"] else "degraded"
    body = {"status": status, "version": __version__, "connections": len(services.connections),
            "store": {"reachable": store}, "bus": bus}
    if services.regions is not None:
        # Another region away does not make this node unready: its own people are served.
        body["regions"] = services.regions.health()
    return web.json_response(body, status=503 if not store else 200)


async def store_reachable(services: Services) -> bool:
    """Whether the store answers within two seconds (never raises: a health check)."""
    try:
        await asyncio.wait_for(services.store.ping(), 2.0)
    except Exception:  # any failure is an answer here: not reachable
        return False
    return True


async def _shield(request: web.Request) -> web.Response:
    services: Services = request.app["services"]
    # With the resumption tickets' figures: live sessions, hellos resumed and declined.
    return web.json_response({**services.shield.status(),
                              "resumption": services.resumption.stats()})


async def _metrics(request: web.Request) -> web.Response:
    services: Services = request.app["services"]
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@web.middleware
async def _bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    expected: bytes | None = request.app["token_digest"]
    if expected is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # Digests of equal length, so the comparison's time says nothing about the token.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                _digest(given.strip()), expected):
            return web.json_response(
                {"code": "AUTH_REQUIRED", "message": "this endpoint needs the operator token "
                 "(Authorization: Bearer ...)"},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="pigeon-operator"'})
    return await handler(request)


def build_operator_app(services: Services) -> web.Application:
    app = web.Application(middlewares=[_bearer], client_max_size=4096)
    app["services"] = services
    token = services.settings.operator_token
    app["token_digest"] = _digest(token) if token else None
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/shield", _shield)
    add_admin_routes(app)
    return app


async def start_operator(services: Services,
                         tls: ssl.SSLContext | None) -> tuple[web.AppRunner, str]:
    """Listen on ``operator_listen``; returns the runner (to clean up) and the URL it serves.
    Raises OSError when the address cannot be bound. TLS (the server's certificate) is used
    off loopback only: on loopback it would just get in the way of ``pigeon shield status``."""
    host, port = split_listen(services.settings.operator_listen, "operator_listen")
    runner = web.AppRunner(build_operator_app(services), handle_signals=False, access_log=None,
                           shutdown_timeout=1.0)
    await runner.setup()
    context = None if is_loopback(host) else tls
    try:
        await web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"{'https' if context else 'http'}://{shown}:{bound[1]}"
