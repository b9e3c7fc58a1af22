"""The aiohttp transport: the client protocol on /v1/ws and a minimal /healthz on the public
port (operator endpoints live on their own listener, operator.py), and the server's life
cycle (start, graceful stop on SIGTERM/SIGINT)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import ssl
import sys
import time
from contextlib import suppress
from dataclasses import replace
from typing import TYPE_CHECKING

from aiohttp import WebSocketError, WSMsgType, web
from aiohttp.typedefs import Handler

from pigeon import __version__
from pigeon.media.blobs import DiskBlobStore
from pigeon.protocol import limits
from pigeon.protocol.closing import MAX_REASON_BYTES
from pigeon.protocol.websocket import OP_CLOSE, encode_frame
from pigeon.shield.guard import Shield

from .accept import GuardedProtocol
from .backends import make_bus, make_shield_state, make_store
from .collections_hold import CollectionHold, settle_collector
from .codes import make_sender
from .connection import CLOSE_GOING_AWAY, CLOSE_POLICY, Connection
from .datadir import lock_data_dir, prepare_data_dir, private_umask
from .edge import Edge, normalize
from .media_files import MediaService
from .media_http import add_routes
from .metrics import Metrics
from .operator import start_operator, store_reachable
from . import restart_times
from .services import Services
from .settings import Settings
from . import sticker_web
from .sticker_web import StickerWeb
from .stopping import StopClock, close_connections
from .streams import purge_device_inboxes

if TYPE_CHECKING:
    from .workers import Worker

log = logging.getLogger("pigeon.server")

FULL_RETRY_AFTER = 5  # seconds a connection refused at max_connections is told to wait
# After aiohttp refused a frame half-way: how long, and how many more of the peer's bytes,
# its socket is read (and dropped) so that our close frame reaches it (accept.linger).
LINGER_SECONDS = 2.0
LINGER_BYTES = 8 * 1024 * 1024


class _WebSocket(web.WebSocketResponse):
    """aiohttp's WebSocket, except that the handler ends the socket after a refused frame.

    aiohttp ends it in one place, ``_close_transport``. When its reader refuses the peer's
    bytes part-way through a frame (over ``max_msg_size``, or not WebSocket at all), as they
    arrive or while it waits for the peer's close frame, it writes its close frame and closes
    the socket at once, with the rest of that frame unread: that resets the connection and can
    destroy the close frame before the peer reads it. Then the handler lingers first
    (GuardedProtocol.linger) and closes after (``finish``); every other end is aiohttp's."""

    deferred = False

    def _close_transport(self) -> None:
        if isinstance(self.exception(), WebSocketError):
            self.deferred = True
        else:
            super()._close_transport()

    def finish(self) -> None:
        if self.deferred:
            super()._close_transport()


async def _ws(request: web.Request) -> web.StreamResponse:
    services: Services = request.app["services"]
    if len(services.connections) >= services.settings.max_connections:
        # With when to come back: a returning herd waits instead of hammering (issue 13).
        raise web.HTTPServiceUnavailable(text="too many connections\n",
                                         headers={"Retry-After": str(FULL_RETRY_AFTER)})
    address: str = request["client"]
    guard = request.app["guards"].get(request.transport)
    request_line = f"{request.method} {request.path_qs} HTTP/1.1\r\n".encode()
    if guard is not None and not guard.admit_forwarded(address, request_line):
        raise web.HTTPServiceUnavailable()  # refused by the shield; already aborted
    # aiohttp refuses frames over max_msg_size by closing with 1009. Frames between our limit
    # and 4x it get a typed FRAME_TOO_LARGE error first, so honest clients learn why.
    # timeout: how long a close waits for the peer's close frame. An abuser we cut off does not
    # answer it; two seconds is plenty for an honest client.
    ws = (_WebSocket if guard is not None else web.WebSocketResponse)(
        max_msg_size=4 * limits.MAX_FRAME_BYTES, heartbeat=30.0, compress=False, timeout=2.0)
    try:
        await ws.prepare(request)
    except web.HTTPException as exc:
        exc.force_close()  # a bad handshake: no second try on this connection
        raise
    except ConnectionError:
        # The peer went away during the upgrade (often: the shield evicted it). Raising an
        # HTTP error lets aiohttp drop it quietly; an exception here would be logged with a
        # traceback, and formatting tracebacks is the last thing to spend CPU on in a flood.
        raise web.HTTPServiceUnavailable() from None
    conn = Connection(services, address, guard)
    if request.transport is not None:
        conn.abort_transport = request.transport.abort
        transport = request.transport
        conn.write_last = (lambda frames, code, reason, ending:
                           _write_last(transport, frames, code, reason, ending))
        conn.unsent_bytes = transport.get_write_buffer_size
    writer = asyncio.create_task(_write(conn, ws))
    try:
        # The shield also aborts silent sockets at accept level; this deadline covers a
        # WebSocket that opened but never said hello, with the shield on or off.
        async with asyncio.timeout(services.settings.hello_deadline) as deadline:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await conn.receive(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    await conn.receive(msg.data.encode("utf-8", "surrogatepass"))
                else:
                    break
                # Once: rescheduling on every frame cost a timer handle per message.
                if deadline.when() is not None and (conn.user_id is not None
                                                    or conn.protocol.version):
                    deadline.reschedule(None)
                if conn.close_code is not None:
                    break
                # Backpressure: while too much waits to be written to this peer (or to its
                # account), read nothing more from it.
                await conn.wait_writable()
                if conn.close_code is not None:
                    break
    except TimeoutError:
        conn.close(CLOSE_POLICY, "HELLO_TIMEOUT")
    finally:
        if conn.close_code is None:
            conn.close(1000, "")
        with suppress(asyncio.TimeoutError, ConnectionError):
            await asyncio.wait_for(writer, 5.0)
        writer.cancel()
        conn.finished()
        try:
            # A peer that reads nothing never takes our close frame either: past the
            # timeout the socket is dropped, so nothing of it stays in our buffers.
            await asyncio.wait_for(
                ws.close(code=conn.close_code or 1000, message=conn.close_reason.encode()), 5.0)
        except (asyncio.TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()
        if isinstance(ws, _WebSocket) and ws.deferred:  # the peer may still be sending
            try:
                assert guard is not None
                await guard.linger(LINGER_SECONDS, LINGER_BYTES)
            finally:
                ws.finish()
    return ws


def _write_last(transport: asyncio.Transport, frames: list[bytes], code: int,
                reason: bytes, ending: bool) -> None:
    """A planned stop's last words on one socket, written at once: aiohttp's writer writes
    each frame whole, so ours start at a frame boundary. The socket closes once they are out
    (no wait for the peer's close frame); a peer that reads nothing is dropped by the stop.
    ``ending`` (the process ends after the stop): the socket reads nothing more and only
    half-closes (FIN after the frames), so that no handler is woken to unwind; the exit
    closes it (the kernel still sends what it holds)."""
    if transport.is_closing():
        return
    close = encode_frame(code.to_bytes(2, "big") + reason[:MAX_REASON_BYTES], OP_CLOSE)
    if ending:
        with suppress(RuntimeError, AttributeError, NotImplementedError):
            transport.pause_reading()
    transport.write(b"".join([*(encode_frame(frame) for frame in frames), close]))
    if not ending:
        transport.close()
    elif transport.can_write_eof():  # TLS cannot: there the exit closes the socket
        transport.write_eof()


async def _write(conn: Connection, ws: web.WebSocketResponse) -> None:
    while (frame := await conn.next_frame()) is not None:
        try:
            await ws.send_bytes(frame)
        except ConnectionError:
            conn.close(CLOSE_GOING_AWAY, "")
            return
    with suppress(ConnectionError):
        await ws.close(code=conn.close_code or 1000, message=conn.close_reason.encode())


async def _healthz(request: web.Request) -> web.Response:
    # Says only whether this node can serve (a load balancer's readiness check): version, load
    # and details are for the operator listener. 503 while its store does not answer.
    if not await store_reachable(request.app["services"]):
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})


@web.middleware
async def _client_address(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve who is calling (X-Forwarded-For from trusted proxies, server/edge.py) and
    rate-limit plain HTTP per address: only the WebSocket upgrade, which admission at accept
    already guards, is not counted."""
    guard = request.app["guards"].get(request.transport)
    peer = guard.address if guard is not None else normalize(request.remote or "unknown")
    edge: Edge = request.app["edge"]
    address = edge.client(peer, request.headers.getall("X-Forwarded-For", ()))
    request["client"] = address
    upgrade = request.path == "/v1/ws" and request.headers.get("Upgrade", "").lower() == "websocket"
    # A sticker upload with a session token is charged to its session and account once the
    # token is checked (server/sticker_web.py), as a call is: an artist adding a set must not
    # spend the address's budget for anonymous requests (nor be banned for it). The media API
    # counts its calls itself (media_http.py): per device once the token is known, per address
    # for those without one. A 2 GiB upload is hundreds of parts.
    if (not upgrade and not sticker_web.carries_token(request)
            and not request.path.startswith("/media/")):
        services: Services = request.app["services"]
        wait = services.shield.check_http(address,
                                          sticker_file=request.path.startswith("/stickers/files/"))
        if wait:
            response = web.json_response(
                {"code": "RATE_LIMITED", "message": "too many HTTP requests; slow down",
                 "retry_after": round(wait, 2)},
                status=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
            response.force_close()  # the next try pays for a new connection through admission
            return response
    return await handler(request)


def build_app(services: Services, media: MediaService | None = None) -> web.Application:
    app = web.Application(client_max_size=limits.MAX_FRAME_BYTES, middlewares=[_client_address])
    app["services"] = services
    if media is not None:
        add_routes(app, media)
    app["guards"] = {}
    app["edge"] = Edge(services.settings.trusted_proxies, services.settings.proxy_protocol)
    app.router.add_get("/v1/ws", _ws)
    app.router.add_get("/healthz", _healthz)
    if media is not None:
        StickerWeb(services, media.blobs, blob_lock=media.blob_lock).routes(app)
    else:
        StickerWeb(services).routes(app)
    return app


async def _hold_collections_in_storms(shield: Shield) -> None:
    """Full garbage collections wait while devices come back (collections_hold.py)."""
    returns = shield.returns
    if returns is None:
        return
    hold = CollectionHold(lambda: returns.admitted + returns.deferred)
    try:
        while True:
            await asyncio.sleep(1.0)
            held = hold.holding
            hold.tick()
            if hold.holding != held:
                log.info("%s full garbage collections (devices coming back: %d pending)",
                         "holding" if hold.holding else "resuming", returns.pending)
    finally:
        hold.release()


async def serve(settings: Settings, ready: asyncio.Event | None = None, *,
                worker: Worker | None = None, exit_process: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then stop accepting, answer every call in flight, commit
    everything queued, and close. A ``worker`` of ``pigeon serve --workers N`` shares its
    port with the others, and its supervisor holds the data directory (workers.py).
    ``exit_process``: once stopped cleanly, end the process at once (``pigeon serve``): with
    10,000 connections, unwinding their tasks and objects took two more seconds of a restart
    (issue 13) and keeps nothing."""
    private_umask()  # before anything is written: the database, its WAL, secret.key
    # When this start began: the process's own start where it is ours alone (its imports
    # count), the supervisor's for a first worker; else (a server inside another program) now.
    began = (time.time() - (restart_times.process_age() or 0.0)) if exit_process else time.time()
    if worker is not None and worker.started is not None:
        began = worker.started
    if worker is not None:
        await _serve(settings, ready, began, reuse_port=True, ending=exit_process)
    else:
        prepare_data_dir(settings.data, allow_shared=settings.allow_shared_data_dir)
        lock = lock_data_dir(settings.data)  # before the database: one server per directory
        try:
            await _serve(settings, ready, began, ending=exit_process)
        finally:
            os.close(lock)
    if exit_process:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _announced_downtime(settings: Settings, start: float) -> float:
    """The downtime this server's going-away notice will announce: restart_downtime when
    set, else its last stop's and this start's measured seconds (restart_times.py)."""
    data, start = settings.data, round(start, 3)  # as recorded: a reader computes the same
    last = await asyncio.to_thread(restart_times.read, data)
    await asyncio.to_thread(restart_times.record, data, start=start)
    if settings.restart_downtime is not None:
        return settings.restart_downtime
    downtime = replace(last, start=start).downtime(settings.stop_close_seconds)
    log.info("a restart's notice will announce %g s (the last stop took %s s after its "
             "notice, this start %.2f s)", downtime,
             "?" if last.stop is None else f"{last.stop:.2f}", start)
    return downtime


class CannotListen(Exception):
    """A listening address is taken or not ours to use; the message is one line."""


def _reason(exc: OSError) -> str:
    # uvloop's strerror repeats the address; the errno's own text is what a person needs.
    return os.strerror(exc.errno) if exc.errno else str(exc)


async def _serve(settings: Settings, ready: asyncio.Event | None, began: float, *,
                 reuse_port: bool = False, ending: bool = False) -> None:
    store = make_store(settings)
    await store.open()
    metrics = Metrics()
    metrics.add_store_stats(store.stats)
    shield = Shield(settings, state=make_shield_state(settings), enabled=settings.shield)
    services = Services(settings=settings, store=store, bus=make_bus(settings),
                        codes=make_sender(settings.code_sender, settings.code_webhook_url),
                        metrics=metrics, secret=shield.state.secret, shield=shield)
    metrics.add_shield(shield)
    metrics.add_bus(services.bus)
    await services.bus.start()
    table = settings.region_table()
    if table is not None:
        from .regions import RegionLink

        services.regions = RegionLink(services, table, settings.region)
        metrics.add_regions(services.regions)
        await services.regions.start()
    media = MediaService(settings, store, DiskBlobStore(settings.data / "media"), services.clock)
    services.media = media
    for address in reversed(await store.session_addresses(settings.max_known_addresses)):
        shield.remember(address)  # a restart must not forget who its users are
    # ... nor its sessions: their devices' tickets are checked against these (issue 13),
    # once revocations made elsewhere reach us (a shared bus: connected and subscribed).
    # Without that, tickets wait until the bus is back; the long way serves meanwhile.
    for _ in range(100):
        if services.bus.revocations_current:
            break
        await asyncio.sleep(0.05)
    services.resumption.load(await store.live_sessions(settings.resume_max_sessions))
    app = build_app(services, media)
    # The stop closed every socket already (stopping.py): what is left to wait for is short.
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.stop_close_seconds)
    await runner.setup()
    tls = None
    if settings.tls_cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(settings.tls_cert, settings.tls_key)
    operator = None
    if settings.operator_enabled:
        try:
            operator, operator_url = await start_operator(services, tls)
        except OSError as exc:
            await runner.cleanup()
            await store.close()
            await services.codes.close()
            raise CannotListen(f"cannot listen on operator_listen {settings.operator_listen}: "
                               f"{_reason(exc)}") from None
        # Scripts and tests read this line to find the operator port.
        print(f"pigeon operator endpoints on {operator_url} (/metrics, /shield, /healthz)",
              file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    guards = app["guards"]
    edge = app["edge"]
    handler_factory = runner.server
    assert handler_factory is not None
    try:
        listener = await loop.create_server(
            lambda: GuardedProtocol(handler_factory(), shield, guards, edge),
            settings.host, settings.port, ssl=tls, backlog=4096, reuse_address=True,
            reuse_port=reuse_port or None)
    except OSError as exc:  # issue 11, bug 6: a busy port was a traceback
        await runner.cleanup()
        if operator is not None:
            await operator.cleanup()
        await store.close()
        await services.codes.close()
        raise CannotListen(f"cannot listen on {settings.listen}: {_reason(exc)}") from None
    took = time.time() - began  # the start, to the port open (restart_times.py)
    # From here a SIGTERM is a clean stop, not the default's abrupt end.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await shield.start()
    services.downtime = await _announced_downtime(settings, took)
    if ending:  # the process is the server's alone (collections_hold.py)
        settle_collector()
    holding = asyncio.create_task(_hold_collections_in_storms(shield))
    purge = asyncio.create_task(
        purge_device_inboxes(services, settings.device_inbox_purge_every))
    collector = asyncio.create_task(media.collect_forever())
    bound = listener.sockets[0].getsockname()
    scheme = "wss" if tls else "ws"
    host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    # Scripts and tests read this line to find the port (with --listen HOST:0).
    print(f"pigeon {__version__} listening on {scheme}://{host}:{bound[1]}/v1/ws "
          f"(data in {settings.data})", file=sys.stderr, flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        clock = StopClock()
        clock.phase("no new connections; finishing calls in flight (%d connections)",
                    len(services.connections))
        listener.close()
        purge.cancel()
        collector.cancel()
        holding.cancel()
        await close_connections(services, clock, ending=ending)
        # Each part has its bound, so that the stop stays as short as its notice says; the
        # store's close has none: it commits what is queued.
        bound = 2 * settings.stop_close_seconds + 1.0
        # Every socket is closed or dropped by now: what aiohttp's shutdown waits for is the
        # handlers' last lines (bookkeeping in memory), not worth more than this, and nothing
        # at all when the process ends next (its handlers were never woken: stopping.py).
        if not ending:
            await clock.bounded("aiohttp's shutdown", runner.cleanup(),
                                max(0.1, settings.stop_close_seconds))
        if operator is not None:
            await clock.bounded("the operator listener", operator.cleanup(), bound)
        clock.phase("handlers left to the process's exit" if ending else "handlers finished")
        await clock.bounded("the shield", shield.stop(), bound)
        if services.regions is not None:
            await clock.bounded("the region link", services.regions.close(), bound)
        await clock.bounded("the bus", services.bus.close(), bound)
        await store.close()
        await clock.bounded("the code sender", services.codes.close(), bound)
        clock.phase("store closed, everything queued committed")
        after_notice = clock.since_notice()
        if after_notice is not None:
            await asyncio.to_thread(restart_times.record, settings.data, stop=after_notice)
        for handler in logging.getLogger().handlers:
            handler.flush()  # the log's lines (written off the loop, logs.py) come first
        print("pigeon stopped cleanly", file=sys.stderr, flush=True)
