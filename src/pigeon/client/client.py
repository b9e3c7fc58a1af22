"""The asyncio SDK's core: connection life cycle and calls; ordered updates and gap recovery
are its part in ordering.py.

Feature calls live in their own modules and hang off the client as namespaces:
``client.auth``, ``client.account``, ``client.chats``, ``client.messages``, ``client.sessions``,
``client.devices`` (end-to-end keys and envelopes), ``client.inbox`` (this device's inbox,
routed by payload type), ``client.secret`` (secret chats), ``client.secret_groups``
(end-to-end encrypted groups).

Guarantees to the application:

* ``await client.messages.send(...)`` returns only after the server made the message
  durable. If the connection drops first, the SDK reconnects (exponential backoff, full
  jitter) and sends again with the same ``random_id``: the server returns the original.
* ``async for update in client.updates()`` yields every update of the account exactly once,
  in ``pts`` order. Updates that arrive out of order wait briefly for the missing ones;
  a hole that does not fill is fetched with ``updates.get_stream_difference`` (or, from a
  server that speaks only protocol version 1, ``updates.get_difference``).
* An update this SDK cannot read (a type from a later protocol version) is skipped, and its
  position still counts: the stream goes on past it (``skipped_updates`` counts them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp

from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.errors import PigeonError, RateLimited, Unauthorized, Unavailable
from pigeon.protocol.streams import StreamItem
from pigeon.protocol.updates import NewMessage

from pigeon.protocol.pow import WAITING_PARAM, format_ticket, solve

from .devices import Devices
from .inbox import Inbox
from .secret import Secret
from .secret_groups import SecretGroups
from .features import Account, Auth, Chats, Messages, Sessions
from .media import Files
from .safety import Contacts, Requests, Safety
from .stickers import Stickers
from .trust import Trust
from .verification import Verifier
from .link import AdmissionChallenge, ConnectionLost, Link, ServerUnreachable, Transport
from .ordering import OrderedStreams
from .profile import Profile, resolve_profile
from .throttle import (
    RESTART_POLL_FOR, AdaptiveThrottle, CallPacer, backoff, hinted_wait, notice_wait,
    outage_wait, waiting_backoff,
)

log = logging.getLogger("pigeon.client")

# Calls that must not run twice behind the user's back (``retried`` on METHODS).
NOT_RETRIED = m.NOT_RETRIED_METHODS
HANDSHAKE = 3.0  # seconds for the first connect's handshakes; doubled on each retry
WAITING_BACKOFF_CAP = 2.0  # seconds: the reconnect backoff's cap while a call is waiting


def ws_url(server: str) -> str:
    url = server.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[7:]
    elif url.startswith("https://"):
        url = "wss://" + url[8:]
    elif not url.startswith(("ws://", "wss://")):
        url = "ws://" + url
    return url if url.endswith("/v1/ws") else url + "/v1/ws"


class Client(OrderedStreams):
    def __init__(self, server: str | None = None, profile: Profile | Path | str | None = None,
                 *, reconnect: bool = True, max_backoff: float = 30.0,
                 connect_timeout: float = 10.0, track_updates: bool = True,
                 local_address: str | None = None,
                 versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS,
                 transport: Transport | None = None,
                 passphrase: bytes | str | None = None) -> None:
        """``transport``: how to open the WebSocket (default: aiohttp over the network). Tests
        pass one from :class:`pigeon.testing.StandInServer` to drive the SDK against a
        stand-in server in memory. ``passphrase``: the one this device's end-to-end keys are
        stored under; given, signing in makes and publishes them (``client.devices``)."""
        if not isinstance(profile, Profile):
            # A bare name is a profile made by `pigeon --profile NAME` (profile.py).
            profile = Profile.load(resolve_profile(profile) if profile is not None else None)
        self.profile = profile
        if server is not None:
            self.profile.server = server
        if self.profile.server is None:
            raise ValueError("no server: pass server= or use a profile that has one")
        self.url = ws_url(self.profile.server)
        self._endpoint = 0  # which of endpoints() self.url is
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        # False: a one-shot tool (the CLI's send) that must not consume updates it will never
        # show; the profile's pts then stays where the last reader of updates left it.
        self.track_updates = track_updates
        self.local_address = local_address  # source address to connect from (tests, siege)
        self.versions = versions  # protocol versions offered; the server picks one
        self.transport = transport
        self.version = 0          # the one it picked (0 before the first welcome)
        self.auth = Auth(self)
        self.account = Account(self)
        self.chats = Chats(self)
        self.messages = Messages(self)
        self.sessions = Sessions(self)
        self.safety = Safety(self)
        self.contacts = Contacts(self)
        self.requests = Requests(self)
        self.devices = Devices(self, passphrase)
        self.stickers = Stickers(self)
        self.files = Files(self)
        #: held around every use of this device's end-to-end state that starts on its own
        #: (an inbox batch, a top-up, an expiry sweep): the CLI passes one that keeps other
        #: processes out and reloads what they saved (cli/secret.py); default: nothing
        self.e2e_guard: Callable[[], contextlib.AbstractAsyncContextManager[Any]] = \
            contextlib.nullcontext
        self.inbox = Inbox(self)
        self.secret = Secret(self)
        self.secret_groups = SecretGroups(self)
        self.secret_groups.attach(self.inbox)
        self.trust = Trust(self)
        self.verifier = Verifier(self)
        self._http: aiohttp.ClientSession | None = None
        self._link: Link | None = None
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._fatal: PigeonError | None = None
        self._closing = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        # stream -> seq -> item that came before its turn
        self._early: dict[str, dict[int, StreamItem]] = {}
        self._heads: dict[str, int] = {}      # other streams followed: their last known head
        self._own: tuple[int | None, str] = (None, "")  # (user id, its stream's name)
        self.skipped_updates = 0
        self._gap_task: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()
        self.reconnects = 0
        self.throttle = AdaptiveThrottle()
        self.pacer = CallPacer()
        self._reconnect_after = 0.0  # monotonic time before which the server asked us to wait
        # ... and, of a going-away notice, the start of its window: a device whose app is
        # waiting on a call comes back then, one with nothing to do at its own pick in it
        # (the people chatting are served first; the idle herd spreads out behind them).
        self._window_opens = 0.0
        # Until when a refused connect means "the announced restart is not done yet", and
        # whether the last try found nothing listening.
        self._restart_until = 0.0
        self._port_closed = False
        self._call_waiting = asyncio.Event()
        self.max_overload_retries = 8
        self.waiting_backoff = WAITING_BACKOFF_CAP  # the reconnect backoff's cap, calls waiting
        self.max_rate_wait = 60.0

    # -- life cycle -------------------------------------------------------------------------
    async def connect(self) -> Client:
        """Connect (and, with a saved session, log in and catch up). Raises ServerUnreachable
        at once when nothing listens, Unauthorized(SESSION_INVALID) at once; a server that
        is shedding new connections is retried with backoff for up to ``connect_timeout``.
        Later drops are repaired in the background."""
        if self.transport is None:
            connector = aiohttp.TCPConnector(
                local_addr=(self.local_address, 0) if self.local_address else None,
                ssl=self._tls())
            self._http = aiohttp.ClientSession(connector=connector)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        attempt = dead = 0
        try:
            while True:
                # Short handshakes first (a flooded server drops some), longer on each retry
                # so that a slow network still gets through.
                handshake = min(HANDSHAKE * 2**attempt, max(0.1, deadline - loop.time()))
                try:
                    await self._open(handshake)
                    break
                except ServerUnreachable as exc:
                    attempt += 1
                    delay = max(backoff(attempt, base=0.1, cap=2.0),
                                hinted_wait(exc.retry_after))
                    # Nobody listens there: the deployment's next node, at once, until
                    # each was tried once (_open moved self.url on).
                    dead += not exc.retryable_connect
                    if not exc.retryable_connect and dead < len(self.endpoints()):
                        continue
                    if not exc.retryable_connect or loop.time() + delay > deadline:
                        raise
                    await asyncio.sleep(delay)
        except BaseException:
            if self._http is not None:
                await self._http.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise())
        return self

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (the SDK repairs drops in the background)."""
        return self._link is not None and not self._link.closed.is_set()

    @property
    def reconnect_wait(self) -> float:
        """Seconds before this client may reconnect, as the server asked (a going-away
        notice's pick, a refusal's ``retry_after``); 0 when it asked nothing."""
        return max(0.0, self._reconnect_after - asyncio.get_running_loop().time())

    def http_session(self) -> aiohttp.ClientSession:
        """The HTTP session beside the WebSocket (sticker uploads), once connected."""
        if self._http is None:
            raise ServerUnreachable("not connected over the network")
        return self._http

    def _tls(self) -> ssl.SSLContext | bool:
        """The system's trust store, or the profile's own CA file (a self-signed server)."""
        if self.profile.ca_file is None:
            return True
        return ssl.create_default_context(cafile=self.profile.ca_file)

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.secret.close()
        self.inbox.close()
        self.devices.close()
        self._closing = True
        for task in (self._supervisor, self._gap_task):
            if task is not None:
                task.cancel()
        if self._link is not None:
            await self._link.close()
        if self._http is not None:
            await self._http.close()
        self._queue.put_nowait(None)
        self.profile.save()

    async def _open(self, handshake: float | None = None) -> None:
        assert self._http is not None or self.transport is not None
        # A call waiting (its user is chatting): a server taking back a herd lets such a
        # device in ahead of the idle ones (shield/pacing.py, issue 13).
        waiting = f"{WAITING_PARAM}=1" if self._call_waiting.is_set() else ""
        url = f"{self.url}?{waiting}" if waiting else self.url
        for _ in range(3):
            try:
                link = await Link.open(self._http, url, self.profile.token, self._on_updates,
                                       self._on_error, self.connect_timeout, handshake,
                                       on_items=self._on_items, versions=self.versions,
                                       transport=self.transport, ticket=self.profile.ticket)
                break
            except AdmissionChallenge as challenge:
                # The server rations new connections and offers a way in: solve its
                # challenge (in a thread: the app's loop keeps running) and bring the ticket.
                nonce = await asyncio.to_thread(solve, challenge.token, challenge.difficulty)
                url = f"{self.url}?pow={format_ticket(challenge.token, nonce)}"
                url += f"&{waiting}" if waiting else ""
            except (ServerUnreachable, OSError, asyncio.TimeoutError) as exc:
                # This node does not answer: the next try goes to the next of the
                # deployment's nodes (welcome.endpoints), if it told us of others.
                if not isinstance(exc, ServerUnreachable) or not exc.retryable_connect:
                    self._fail_over()
                raise
        else:
            refused = ServerUnreachable("the server kept refusing new connections")
            refused.retryable_connect = True
            raise refused
        self._link = link
        self._call_waiting.clear()
        welcome = link.welcome
        assert welcome is not None
        self.version = welcome.version
        if welcome.endpoints and welcome.endpoints != self.profile.endpoints:
            self.profile.endpoints = list(welcome.endpoints)
            self.profile.save()
        self.pacer.configure(welcome.budget)
        if welcome.ticket is not None:
            self.profile.ticket = welcome.ticket  # saved with the profile, as the token is
        self._connected.set()
        if self.track_updates and welcome.state is not None and self._behind(welcome.state):
            self._spawn_sync()
        self.inbox.connected()

    def endpoints(self) -> list[str]:
        """The nodes this device may use, its own server first: the profile's server, then
        the others its servers named (deduplicated, as WebSocket URLs)."""
        out = [ws_url(self.profile.server or "")]
        for endpoint in self.profile.endpoints:
            url = ws_url(endpoint)
            if url not in out:
                out.append(url)
        return out

    async def move_to(self, endpoints: list[str]) -> None:
        """Another region holds this account (WRONG_REGION at login): connect to its
        endpoints instead, and remember them (docs/protocol.md, "Regions")."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._link is not None:
            await self._link.close()
        if self._http is not None:
            await self._http.close()
            self._http = None
        self.profile.server, self.profile.endpoints = endpoints[0], list(endpoints[1:])
        self.url, self._endpoint = ws_url(endpoints[0]), 0
        self.profile.save()
        await self.connect()

    def _fail_over(self) -> None:
        candidates = self.endpoints()
        if len(candidates) > 1:
            self._endpoint = (self._endpoint + 1) % len(candidates)
            self.url = candidates[self._endpoint]
            log.info("trying the next node: %s", self.url)

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            assert self._link is not None
            link = self._link
            await link.closed.wait()
            self._connected.clear()
            if self._closing or self._fatal is not None or not self.reconnect:
                self._fail_waiters()
                return
            # Lost without a word (no notice, no refusal's hint): if coming straight back
            # fails, the server is likely down for everyone, and this device spreads its
            # return over the window its last welcome gave (issue 13).
            unannounced = self._reconnect_after <= asyncio.get_running_loop().time()
            spread = (link.welcome.reconnect_window
                      if unannounced and link.welcome is not None else None)
            while not self._closing:
                # Full jitter (AWS architecture blog): spreads a reconnect storm after a server
                # restart over the whole window instead of synchronised waves.
                delay = backoff(attempt, cap=self.max_backoff)
                # ... but never sooner than the server asked (retry_after of a refusal, a
                # going-away notice's pick; its window's start if a call is waiting).
                # A device whose app waits on a call backs off within a shorter cap: after a
                # downtime of refused connects it would otherwise sleep up to 30 s past the
                # server's return with its user's sends waiting (issue 13).
                now = asyncio.get_running_loop().time()
                hurry = waiting_backoff(attempt, min(self.max_backoff, self.waiting_backoff),
                                        self._port_closed and now < self._restart_until)
                attempt += 1
                await self._sleep_unless_wanted(max(delay, self._reconnect_after - now),
                                                max(hurry, self._window_opens - now))
                try:
                    await self._open()
                except Unauthorized as exc:
                    self._fatal = exc
                    self._fail_waiters()
                    return
                except RateLimited as exc:
                    # The hello was refused for a while (RATE_LIMITED; BANNED: this session
                    # tripped limits; TOO_MANY_CONNECTIONS: the account is full): come back
                    # when the server said, with jitter, not in a loop.
                    log.debug("reconnect refused: %s", exc)
                    self._wait_before_reconnect(exc)
                    continue
                except (Unavailable, OSError, asyncio.TimeoutError) as exc:
                    log.debug("reconnect failed: %s", exc)
                    self._port_closed = (isinstance(exc, ServerUnreachable)
                                         and not exc.retryable_connect)
                    if isinstance(exc, Unavailable) and exc.retry_after is not None \
                            and exc.retry_spread is None:
                        # Refused with a hint (a 503's Retry-After, OVERLOADED): not sooner,
                        # unless a call is waiting: the server lets a device that says so in
                        # past its return pacer (issue 13).
                        self._wait_before_reconnect(exc, at_connect=True)
                    if spread:
                        self._spread_after_outage(spread)
                        spread = None
                    continue
                self.reconnects += 1
                self._port_closed = False
                # A link that died of a frame this SDK refuses is likely to die again the same
                # way (a sync at welcome asks the same question): keep backing off then.
                if link.refused is None:
                    attempt = 0
                break

    async def _sleep_unless_wanted(self, patient: float, eager: float) -> None:
        """Sleep ``patient`` seconds, or only ``eager`` ones if a call is (or starts) waiting."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not self._call_waiting.is_set():
            try:
                await asyncio.wait_for(self._call_waiting.wait(), patient)
            except TimeoutError:
                return
        await asyncio.sleep(max(0.0, min(patient, eager) - (loop.time() - started)))

    def _fail_waiters(self) -> None:
        self._connected.set()  # wake callers; they see the link is closed and raise
        self._queue.put_nowait(None)  # and a reader of updates(), which raises the same

    def _wait_before_reconnect(self, error: PigeonError, at_connect: bool = False) -> None:
        # Jittered, so that devices refused together do not all come back in one wave.
        wait = hinted_wait(error.retry_after or 1.0)
        now = asyncio.get_running_loop().time()
        self._reconnect_after = now + wait
        if at_connect:
            # A socket refused before it was ours (a slot to come back at): a call waiting
            # comes back sooner, saying so (?waiting=1), and the calls are not held back.
            self._window_opens = now
            return
        self._window_opens = now + wait
        self.pacer.pause(wait)

    def _spread_after_outage(self, window: float) -> None:
        """The first attempt after an unannounced drop failed: come back at this device's own
        pick in the window (a call waiting still comes back sooner, as in a notice's window)."""
        now = asyncio.get_running_loop().time()
        self._reconnect_after = max(self._reconnect_after, now + outage_wait(window))

    def _come_back_later(self, error: PigeonError) -> None:
        """A going-away notice (or a refusal with a spread): this device picks its own moment
        in the window, so that a restart's devices return spread over it, not as one wave."""
        now = asyncio.get_running_loop().time()
        self._reconnect_after = now + notice_wait(error.retry_after, error.retry_spread)
        self._window_opens = now + notice_wait(error.retry_after, 0.0)
        if error.code == "SHUTTING_DOWN":
            self._restart_until = self._window_opens + RESTART_POLL_FOR

    def _on_error(self, error: PigeonError) -> None:
        if error.retry_spread is not None:
            self._come_back_later(error)
        elif isinstance(error, RateLimited):
            # The connection is closed for rate (or replaced, or banned): come back when
            # the server said, not at once with every pending call.
            self._wait_before_reconnect(error)
        if error.code == "SESSION_INVALID":
            self._fatal = error
            # Kept in the profile, so that the next program using it can say why.
            self.profile.forget_session(error.message)
            self.profile.save()

    # -- calls ------------------------------------------------------------------------------
    async def call(self, method: str, params: m.Params, *,
                   overload_retries: int | None = None) -> Any:
        """Call a method; retried across reconnects; after RATE_LIMITED, once the server's
        ``retry_after`` has passed (for up to ``max_rate_wait`` seconds in all); after
        OVERLOADED, with jittered exponential backoff, up to ``overload_retries`` times
        (default ``max_overload_retries``)."""
        max_refusals = self.max_overload_retries if overload_retries is None else overload_retries
        refusals = 0
        rate_waited = 0.0
        while True:
            if self._fatal is not None:
                raise self._fatal
            if not self._connected.is_set():
                self._call_waiting.set()  # someone waits: come back early in a notice's window
            await self._connected.wait()
            link = self._link
            if link is None or link.closed.is_set():
                if self._fatal is not None:
                    raise self._fatal
                if self._closing or not self.reconnect or self._supervisor is None \
                        or self._supervisor.done():
                    raise ServerUnreachable("not connected to the server")
                self._call_waiting.set()
                await asyncio.sleep(0.05)
                continue
            if not self.throttle.allow():
                refusals += 1
                if refusals > max_refusals:
                    raise Unavailable("the server is overloaded; gave up after backing off",
                                      code="OVERLOADED")
                await asyncio.sleep(backoff(refusals))
                continue
            try:
                async with self.pacer.slot(method, self.profile.token is not None):
                    result = await link.request(method, params)
            except ConnectionLost:
                if method in NOT_RETRIED or not self.reconnect or self._closing:
                    raise
                continue  # the same params, so the same random_id: the server deduplicates
            except RateLimited as exc:
                # A quota, not an overload: the server said when; wait that long (plus jitter,
                # so a crowd does not come back in step) and do not count it as overload.
                wait = (exc.retry_after or 1.0) * random.uniform(1.0, 1.2)
                rate_waited += wait
                if exc.code != "RATE_LIMITED" or rate_waited > self.max_rate_wait:
                    raise
                self.pacer.pause(exc.retry_after or 1.0)  # the others wait too
                await asyncio.sleep(wait)
                continue
            except Unavailable as exc:
                if exc.code == "DEFERRED":
                    # This connection's bulk work is over its rate (issue 13): call again when
                    # the server said. Not an overload: the other calls go on meanwhile.
                    wait = hinted_wait(exc.retry_after)
                    rate_waited += wait
                    if rate_waited > self.max_rate_wait:
                        raise
                    await asyncio.sleep(wait)
                    continue
                if exc.code != "OVERLOADED":
                    raise
                self.throttle.record(accepted=False)
                refusals += 1
                if refusals > max_refusals:
                    raise
                await asyncio.sleep(max(exc.retry_after or 0.0, backoff(refusals))
                                    * random.uniform(1.0, 1.5))
                continue
            self.throttle.record(accepted=True)
            if (self.track_updates and method in ("messages.send", "messages.forward")
                    and result.pts):
                # This device is not pushed its own new message: the answer carries its pts.
                # (pts 0: a large chat's message, which comes on that chat's stream.)
                self._accept([NewMessage(pts=result.pts, message=result.message)])
            return result

    # -- updates ----------------------------------------------------------------------------
    async def updates(self) -> AsyncIterator[Any]:
        """Every update, once, in pts order (ephemeral ones, pts 0, as they come). Ends when
        the client is closed; raises when the connection ends for good: Unauthorized
        (SESSION_INVALID) when the session was terminated, ConnectionLost without reconnect."""
        while True:
            update = await self._queue.get()
            if update is None:
                if self._closing:
                    return
                raise self._fatal or ConnectionLost("the connection closed")
            yield update

    def emit(self, event: Any) -> None:
        """Hand an event the SDK made itself (a secret message decrypted, say) to the
        reader of :meth:`updates`, among the server's updates."""
        self._queue.put_nowait(event)

    def pending_updates(self) -> int:
        return self._queue.qsize()

    def take_updates(self) -> list[Any]:
        """The updates already received, in order, without waiting for more."""
        taken = []
        while not self._queue.empty():
            update = self._queue.get_nowait()
            if update is not None:
                taken.append(update)
        return taken

    def save(self) -> None:
        self.profile.save()
