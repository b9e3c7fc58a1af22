"""One live WebSocket to the server: frames out, typed results and updates in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from pigeon.protocol import limits
from pigeon.protocol.closing import parse_reason
from pigeon.protocol.errors import PigeonError, ProtocolError, Unavailable, error_from_wire
from pigeon.protocol.frames import (
    ClientProtocol,
    ErrorReceived,
    FrameSkipped,
    ItemsReceived,
    ResultReceived,
    UpdatesReceived,
    Welcome,
    WelcomeReceived,
)
from pigeon.protocol.methods import Params
from pigeon.protocol.pow import HEADER, parse_challenge
from pigeon.protocol.streams import StreamItem

log = logging.getLogger("pigeon.client")


class ConnectionLost(Unavailable):
    """The connection closed before the answer came; the call may or may not have run."""

    code = "UNAVAILABLE"


class ServerUnreachable(Unavailable):
    code = "UNAVAILABLE"

    # False when nothing listens there (connection refused, no route): retrying is pointless.
    # True when the server took the connection and let it go (it is shedding new sockets).
    retryable_connect = False


class AdmissionChallenge(ServerUnreachable):
    """The server is rationing new connections and handed out a proof-of-work challenge:
    solve it and connect again with the ticket (docs/shield.md)."""

    retryable_connect = True

    def __init__(self, message: str, token: str, difficulty: int) -> None:
        super().__init__(message)
        self.token, self.difficulty = token, difficulty


ACCEPTED_FRAME_BYTES = limits.MAX_SERVER_FRAME_BYTES + 1024  # 256 KiB


def _refused_as_too_big(msg: aiohttp.WSMessage) -> ProtocolError | None:
    if (msg.type == aiohttp.WSMsgType.ERROR and isinstance(msg.data, aiohttp.WebSocketError)
            and msg.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG):
        return ProtocolError(
            f"the server sent a frame larger than this SDK accepts ({msg.data}); "
            "upgrade the server, or tell its operator",
            code="FRAME_TOO_LARGE")
    return None


def _ignore_items(items: list[StreamItem]) -> None:
    pass


def _retry_after(headers: Any) -> float | None:
    """A 503's Retry-After, in seconds (the date form is not used by Pigeon servers)."""
    value = headers.get("Retry-After") if headers else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not 0 <= seconds <= limits.MAX_RETRY_SECONDS:
        return None
    return seconds


def _close_hint(msg: aiohttp.WSMessage) -> PigeonError | None:
    """The error a close frame's reason describes, if it carries a retry hint."""
    reason = parse_reason(msg.extra) if isinstance(msg.extra, str) else None
    if reason is None or (reason.retry_after is None and reason.retry_spread is None):
        return None
    return error_from_wire(reason.code, f"the server closed the connection ({reason.code})",
                           reason.retry_after, reason.retry_spread)


async def _messages(ws: Socket) -> AsyncIterator[aiohttp.WSMessage]:
    """The socket's messages, its close frame included (aiohttp's iterator stops before it,
    and the close frame's reason may say when to come back)."""
    if isinstance(ws, aiohttp.ClientWebSocketResponse):
        while True:
            msg = await ws.receive()
            yield msg
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED):
                return
    else:
        async for msg in ws:
            yield msg


class Socket(Protocol):
    """What a link needs of its WebSocket: aiohttp's client socket has it, and so has the
    in-memory one of :func:`pigeon.testing.memory_transport_pair`."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self) -> Any: ...

    def __aiter__(self) -> AsyncIterator[aiohttp.WSMessage]: ...


#: Opens a socket to ``url`` (ending in /v1/ws). The seam through which tests connect the SDK
#: to a stand-in server without a network (``Client(transport=...)``, docs/architecture.md).
#: It raises ServerUnreachable (or an OSError) when it cannot connect.
Transport = Callable[[str], Awaitable[Socket]]


class Link:
    """One connection. Pushes reach ``on_updates`` (version 1: updates positioned by their
    ``pts``) or ``on_items`` (version 2: stream items), in the order they came."""

    def __init__(self, ws: Socket,
                 on_updates: Callable[[list[Any]], None],
                 on_error: Callable[[PigeonError], None],
                 on_items: Callable[[list[StreamItem]], None] = _ignore_items) -> None:
        self.ws = ws
        self.protocol = ClientProtocol()
        self._on_updates = on_updates
        self._on_items = on_items
        self._on_error = on_error
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self.welcome: Welcome | None = None
        self._welcomed: asyncio.Future[Welcome] = asyncio.get_running_loop().create_future()
        #: set when the link died of a frame this SDK refuses (too big, undecodable)
        self.refused: ProtocolError | None = None
        self.reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()

    @classmethod
    async def open(cls, session: aiohttp.ClientSession | None, url: str, token: str | None,
                   on_updates: Callable[[list[Any]], None],
                   on_error: Callable[[PigeonError], None], timeout: float = 10.0,
                   handshake: float | None = None, *,
                   on_items: Callable[[list[StreamItem]], None] = _ignore_items,
                   versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS,
                   transport: Transport | None = None, ticket: str | None = None) -> Link:
        """Over ``session`` (aiohttp), or through ``transport`` when given.
        ``handshake``: seconds for the TCP and WebSocket handshakes (None: no limit). A
        server whose listen queue overflows drops handshake packets, and TCP retransmits
        them after 1, 3, 7 s; a caller that retries sooner with a fresh socket gets in
        sooner."""
        try:
            # Over MAX_SERVER_FRAME_BYTES, with room: aiohttp refuses a message of exactly
            # max_msg_size bytes, and SDKs before issue 7 accepted just under 256 KiB.
            async with asyncio.timeout(handshake):
                if transport is not None:
                    ws: Socket = await transport(url)
                else:
                    assert session is not None
                    ws = await session.ws_connect(url, max_msg_size=ACCEPTED_FRAME_BYTES,
                                                  timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                                                  heartbeat=30.0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            challenge = parse_challenge(exc.headers.get(HEADER) if exc.headers else None)
            if exc.status == 503 and challenge is not None:
                raise AdmissionChallenge("the server is rationing new connections",
                                         *challenge) from None
            unreachable = ServerUnreachable(f"cannot reach {url}: {exc}",
                                            retry_after=_retry_after(exc.headers))
            unreachable.retryable_connect = exc.status == 503
            raise unreachable from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            unreachable = ServerUnreachable(f"cannot reach {url}: {exc}")
            # Refused or unroutable: nobody listens. Anything else (a reset, a timeout): the
            # server is there but dropped us, as a shield under a flood does.
            unreachable.retryable_connect = not isinstance(exc, aiohttp.ClientConnectorError)
            raise unreachable from None
        link = cls(ws, on_updates, on_error, on_items)
        await ws.send_bytes(ClientProtocol.hello(token, versions=versions, ticket=ticket))
        try:
            link.welcome = await asyncio.wait_for(asyncio.shield(link._welcomed), timeout)
        except BaseException:
            await link.close()
            raise
        return link

    async def request(self, method: str, params: Params) -> Any:
        if self.closed.is_set():
            raise ConnectionLost("not connected")
        request_id, frame = self.protocol.call(method, params)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[request_id] = fut
        try:
            await self.ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError) as exc:
            self._calls.pop(request_id, None)
            raise ConnectionLost(str(exc)) from None
        return await fut

    async def _read(self) -> None:
        failure: PigeonError = ConnectionLost("the connection closed")
        try:
            async for msg in _messages(self.ws):
                if (too_big := _refused_as_too_big(msg)) is not None:
                    raise too_big
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    hinted = _close_hint(msg)
                    if hinted is not None and failure.retry_after is None \
                            and failure.retry_spread is None:
                        # The error frame with the hint never came (a dropped outbox), but
                        # the close frame says when to come back.
                        failure = hinted
                        self._on_error(hinted)
                    break
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                event = self.protocol.receive(msg.data)
                if isinstance(event, ResultReceived):
                    fut = self._calls.pop(event.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(event.value)
                elif isinstance(event, ItemsReceived):
                    self._on_items(event.items)
                elif isinstance(event, UpdatesReceived):
                    self._on_updates(event.updates)
                elif isinstance(event, FrameSkipped):
                    # A later version's frame, sent although we did not ask for that version:
                    # a server bug, but no reason to drop the connection.
                    log.debug("skipped a %r frame this SDK does not know", event.type)
                elif isinstance(event, ErrorReceived):
                    if event.id is None:
                        failure = event.error
                        if not self._welcomed.done():
                            self._welcomed.set_exception(event.error)
                        self._on_error(event.error)
                    else:
                        fut = self._calls.pop(event.id, None)
                        if fut is not None and not fut.done():
                            fut.set_exception(event.error)
                elif isinstance(event, WelcomeReceived) and not self._welcomed.done():
                    self._welcomed.set_result(event.welcome)
        except ProtocolError as exc:
            # The server sent what this SDK cannot take. Asking again would get the same, so
            # the calls waiting here fail with this error instead of being resent after a
            # reconnect, which would loop for ever (issue 7, finding 3).
            failure = self.refused = exc
            await self.ws.close()
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed.set()
            lost = (ConnectionLost(str(failure)) if isinstance(failure, ProtocolError)
                    else failure)
            if not self._welcomed.done():
                self._welcomed.set_exception(lost)
            for fut in self._calls.values():
                if not fut.done():
                    fut.set_exception(self.refused or ConnectionLost(
                        "the connection closed before the answer"))
            self._calls.clear()

    async def close(self) -> None:
        await self.ws.close()
        self.closed.set()
        self.reader.cancel()
        try:
            await self.reader
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing regardless
            pass
