"""The shield as the server sees it: one object that composes every layer.

Layers, in the order a connection meets them (docs/shield.md explains each and how to tune it):

1. accept: bans, then admission caps per address, per prefix and in total; unauthenticated
   connections live in a pool of their own, where a newcomer evicts a random idler;
2. the first frame must arrive within ``hello_deadline`` (slowloris), frames are rate-limited
   per connection;
3. every call is classed (interactive, bulk, unauthenticated), rate-limited per session,
   account, address and prefix, then queued for its class's budget, where CoDel sheds the
   lowest class first;
4. unauthenticated expensive calls (login codes, sign-in) need proof of work when the
   unauthenticated class is under pressure, and calls that bring solved work are served in
   a class of their own (PROVEN) ahead of those that do not; login codes by SMS are limited
   per number and by adaptive budgets per country and globally (``codebudget.py``), codes
   delivered in the app per number and requesting prefix;
5. whoever keeps tripping limits is banned for a while (and, with ``nft_set``, dropped by the
   kernel): a logged-in session by itself, a stranger's address only with evidence
   proportional to the logged-in sessions that share it, and never cutting those sessions
   off (penalties.py).

With ``enabled=False`` every check passes: that is the baseline ``pigeon siege --compare``
measures against.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

from pigeon.protocol import methods
from pigeon.protocol.errors import ProofOfWorkRequired, RateLimited
from pigeon.protocol.types import Budget, PowSolution

from .admission import Admission, Decision, Ticket, prefix_of
from .bans import NftMirror
from .fanout import FanoutBudget
from .gate import PROBATION, AcceptGate, Credit
from .logins import LoginLimits
from .penalties import Penalties
from .pacing import ReturnPacer
from .pow import GRACE_BITS, DifficultyController, ProofOfWork
from .ratelimit import Rate, TokenBucket
from .scheduler import Scheduler, WorkClass
from .state import Limiter, MemoryShieldState, ShieldState

log = logging.getLogger("pigeon.shield")

# Per-method facts live on pigeon.protocol.methods.METHODS; these are its views.
BULK_METHODS = methods.BULK_METHODS
PAGED_METHODS = methods.PAGED_METHODS
EXPENSIVE_UNAUTHENTICATED = methods.EXPENSIVE_METHODS
SLOTLESS = methods.SLOTLESS_METHODS
SENDING_METHODS = methods.SENDING_METHODS


class Shield(AcceptGate, FanoutBudget):
    """``state``: where limiters, bans, known addresses, spent proofs and the secret live
    (state.py); by default this process's memory, holding ``secret``."""

    def __init__(self, settings: Any, secret: bytes | None = None, *,
                 state: ShieldState | None = None, enabled: bool = True,
                 clock: Any = time.monotonic, wall_clock: Any = time.time) -> None:
        if state is None:
            if secret is None:
                raise ValueError("a shield needs its state or a secret")
            state = MemoryShieldState(secret, clock=clock,
                                      max_known=settings.max_known_addresses)
        self.state = state
        self.enabled = enabled
        self.settings = settings
        self.clock = clock
        self.hello_deadline = settings.hello_deadline
        self.admission = Admission(
            max_per_address=settings.max_per_address if enabled else 10**9,
            max_per_prefix=settings.max_per_prefix if enabled else 10**9,
            max_unauthenticated=settings.max_unauthenticated if enabled else 10**9,
            max_total=settings.max_connections,
        )
        self.scheduler = Scheduler(
            budgets={WorkClass.INTERACTIVE: settings.budget_interactive,
                     WorkClass.BULK: settings.budget_bulk,
                     WorkClass.PROVEN: settings.budget_proven,
                     WorkClass.UNAUTHENTICATED: settings.budget_unauthenticated},
            target=settings.queue_target, interval=settings.queue_interval, clock=clock)
        self.mirror = NftMirror(settings.nft_set) if settings.nft_set else None
        self.penalties = Penalties(settings, clock=clock, mirror=self.mirror, state=state)
        self.bans = self.penalties.addresses
        self.difficulty = DifficultyController(min_bits=settings.pow_min_bits,
                                               max_bits=settings.pow_max_bits, clock=clock)
        pow_key = hashlib.sha256(b"pigeon-pow:" + state.secret).digest()  # a key of its own
        # With the shield off no work is ever asked; on, the difficulty is the controller's.
        self.pow = ProofOfWork(pow_key, clock=wall_clock, replay=state.replay,
                               controller=self.difficulty if enabled else None)
        self.frame_rate = Rate.parse(settings.frame_rate)
        self.frame_rate_unauthenticated = Rate.parse(settings.frame_rate_unauthenticated)
        self.max_refusals = settings.max_refusals
        self.bulk_rate = Rate.parse(getattr(settings, "bulk_rate_connection", "20/1s burst 40"))

        def limiter(name: str, setting: str) -> Limiter:
            return state.limiter(name, Rate.parse(setting))

        self.per_session = limiter("session", settings.rate_session)
        self.per_account = limiter("account", settings.rate_account)
        self.per_account_send = limiter("send", settings.rate_send)
        self.per_address = limiter("address", settings.rate_address)
        self.per_prefix = limiter("prefix", settings.rate_prefix)
        self.http_per_address = limiter("http_address", settings.http_rate)
        self.sticker_files_per_address = limiter("sticker_files", settings.sticker_file_rate)
        # The fan-out budget per account, and the chat sizes it estimates by (fanout.py).
        self.per_account_fanout = limiter("fanout", settings.rate_fanout)
        self.chat_sizes: OrderedDict[int, int] = OrderedDict()
        self.chat_sizes_asked: set[int] = set()  # being looked up (server/fanout.py)
        self.max_chat_sizes = 100_000
        # Login codes and sign-ins: per address, per number, in the app, the SMS budgets.
        self.logins = LoginLimits(settings, enabled=enabled, pow=self.pow,
                                  refuse=self._refuse, clock=clock, state=state)
        self.priority_bits = settings.pow_priority_bits
        self.calls_per_proof = settings.pow_calls_per_proof
        # Sockets on probation (rationed, their request line not read yet), oldest first.
        self.probation: OrderedDict[Any, float] = OrderedDict()  # socket -> held since
        self.max_probation = settings.max_probation if enabled else 0
        self.probation_wait = settings.probation_wait
        self.tickets_admitted = 0
        self.refused: dict[str, int] = {}
        # Event-loop lag (how late a timer fires): the one measure of overload that counts
        # everything the process does, including work no class budget sees (TLS and HTTP
        # handshakes, socket reads). While it is high, new sockets are rationed.
        self.loop_lag = 0.0
        self.lag_target = settings.lag_target
        self.accept_rate = Rate.parse(settings.accept_rate_overloaded)
        self._accept_bucket = TokenBucket(self.accept_rate.burst, clock())
        self.accept_rate_unknown = Rate.parse(settings.accept_rate_unknown)
        self._unknown_bucket = TokenBucket(self.accept_rate_unknown.burst, clock())
        # Addresses that logged-in sessions came from. When new sockets must be rationed,
        # these go first: "authenticated users first" applied before we know who is calling.
        # An attacker cannot borrow one (TCP's handshake proves the source address), and an
        # account he stole only vouches for his own address, which bans still cover.
        self.known = self.penalties.known
        # Handshakes from known addresses at once; past them, a return slot (pacing.py).
        self.returns = ReturnPacer(
            settings.max_known_handshakes, settings.restart_window_max,
            rate=settings.restart_reconnect_rate, clock=clock,
        ) if enabled and settings.max_known_handshakes > 0 else None
        self.accept_rate_waiting = Rate.parse(settings.accept_rate_waiting)
        self._waiting_bucket = TokenBucket(self.accept_rate_waiting.burst, clock())
        self._ticker: asyncio.Task[None] | None = None

    def new_frame_bucket(self, authenticated: bool = False) -> TokenBucket:
        """A full bucket: the anonymous burst for a new connection; the authenticated one
        for a connection that has just logged in, which must not inherit what is left of
        the anonymous burst (an SDK resending its pending calls at once would trip it)."""
        rate = self.frame_rate if authenticated else self.frame_rate_unauthenticated
        return TokenBucket(rate.burst, self.clock())

    def budget(self) -> Budget | None:
        """The budget a logged-in device is told in ``welcome`` (None with the shield off):
        the tightest of its per-session, per-account and frame limits, and the send limit."""
        if not self.enabled:
            return None
        calls = min((self.per_session.rate, self.per_account.rate, self.frame_rate),
                    key=lambda r: r.per_second)
        burst = min(self.per_session.rate.burst, self.per_account.rate.burst,
                    self.frame_rate.burst)
        sends = self.per_account_send.rate
        return Budget(calls_per_second=calls.per_second, call_burst=int(burst),
                      sends_per_second=sends.per_second, send_burst=int(sends.burst))

    def new_bulk_bucket(self) -> TokenBucket:
        return TokenBucket(self.bulk_rate.burst, self.clock())

    def bulk_wait(self, bucket: TokenBucket, cost: float) -> float:
        """Seconds before a connection may start bulk work of ``cost`` (0: now). A device
        catching up pages through its differences at ``bulk_rate_connection``: past it, it
        is told when to come back instead of taking the reader threads from the people
        chatting (issue 13). No strike: an honest device meets it after a long absence."""
        if not self.enabled:
            return 0.0
        wait = bucket.take(self.bulk_rate, self.clock(), cost)
        if wait:
            self._refuse("bulk_deferred")
        return wait

    def frame_allowed(self, bucket: TokenBucket, address: str, authenticated: bool, *,
                      session_id: int | None = None, user_id: int | None = None) -> bool:
        """Frames per connection: a stranger needs a handful a second to log in; a logged-in
        device may send many more."""
        rate = self.frame_rate if authenticated else self.frame_rate_unauthenticated
        if not self.enabled or bucket.take(rate, self.clock()) == 0.0:
            return True
        self._refuse("frame_rate")
        self.strike(address, "frame_rate", session_id=session_id, user_id=user_id)
        return False

    def remember(self, address: str) -> None:
        """A session logged in from this address before this process started."""
        self.penalties.remember(address)

    def logged_in(self, address: str, session_id: int) -> None:
        """A connection from ``address`` authenticated as ``session_id``."""
        self.penalties.arrive(address, session_id)

    def logged_out(self, address: str, session_id: int) -> None:
        """That connection closed or logged out."""
        self.penalties.leave(address, session_id)

    def check_session(self, session_id: int, user_id: int) -> None:
        """Raise BANNED if this session or its account is refused for now."""
        if self.enabled:
            self.penalties.check_session(session_id, user_id)

    def check_account(self, user_id: int) -> None:
        """Raise BANNED if this account is refused for now (before a sign-in)."""
        if self.enabled:
            self.penalties.check_account(user_id)

    def check_banned(self, address: str) -> None:
        """Raise BANNED for a stranger's call from a banned address (one that came in by the
        token-only door and did not log in)."""
        if self.enabled:
            self.bans.check(address)

    def check_http(self, address: str, sticker_file: bool = False) -> float:
        """Public HTTP requests (not the WebSocket upgrade) from one address: the seconds to
        wait, 0 when this one may go ahead. Sticker images have a budget of their own
        (``sticker_file_rate``): one page shows up to 120."""
        if not self.enabled:
            return 0.0
        limiter = self.sticker_files_per_address if sticker_file else self.http_per_address
        wait = limiter.take(address)
        if wait:
            self._refuse("http_rate")
            self.strike(address, "http_rate")  # a flood keeps paying with a ban, as elsewhere
        return wait

    # -- calls ------------------------------------------------------------------------------
    @staticmethod
    def classify(method: str, authenticated: bool, proven: bool = False) -> WorkClass:
        if not authenticated:
            return WorkClass.PROVEN if proven else WorkClass.UNAUTHENTICATED
        return WorkClass.BULK if method in BULK_METHODS else WorkClass.INTERACTIVE

    @staticmethod
    def call_cost(method: str, params: Any) -> float:
        """What a call costs in the rate limits: one, or for a paged listing one per tenth of
        its page (a page of 100 dialogs is ten calls' worth of reads: issue 7, finding 7)."""
        if method in PAGED_METHODS:
            return max(1.0, getattr(params, "limit", 10) / 10)
        return 1.0

    def check_rate(self, method: str, address: str, user_id: int | None,
                   session_id: int | None, cost: float = 1.0) -> None:
        """Raise RATE_LIMITED (and count a strike) if this call is over any of its limits."""
        if not self.enabled:
            return
        if user_id is None:
            if method != "hello":  # a hello's token is checked by itself (the door)
                self.bans.check(address)
            wait = self.per_address.take(address) or self.per_prefix.take(prefix_of(address))
        else:
            wait = (self.per_session.take(str(session_id), cost)
                    or self.per_account.take(str(user_id), cost))
            if not wait and method in SENDING_METHODS:
                wait = self.per_account_send.take(str(user_id))
        if wait:
            self._refuse("rate")
            self.strike(address, "rate", session_id=session_id, user_id=user_id)
            raise RateLimited(f"slow down: retry in {wait:.1f} s", retry_after=round(wait, 2))

    def slot(self, work_class: WorkClass) -> contextlib.AbstractAsyncContextManager[None]:
        """``async with shield.slot(cls):`` around the work of one call."""
        if not self.enabled:
            return _NO_SLOT
        return self.scheduler.slot(work_class)

    def slot_for(self, method: str, authenticated: bool,
                 proven: bool) -> contextlib.AbstractAsyncContextManager[None]:
        if not self.enabled or method in SLOTLESS:
            return _NO_SLOT
        return self.scheduler.slot(self.classify(method, authenticated, proven))

    def challenge(self) -> tuple[str, int, float]:
        """An ``auth.challenge`` answer. With the shield on it asks at least
        ``pow_priority_bits``: the client only asks when it was refused, and a solution
        that easy would not buy it the priority it asks for."""
        return self.pow.challenge(min_bits=self.priority_bits if self.enabled else 0)

    def prove(self, method: str, solution: PowSolution | None,
              credit: Credit | None) -> tuple[bool, Credit | None]:
        """Before a call is queued: does it bring solved work? Returns (proven, the
        connection's credit), or raises POW_REQUIRED / POW_INVALID when the load asks for
        work the call did not bring. One HMAC and one hash: cheaper than queueing the call,
        so a flood without work is refused before it takes a slot."""
        if not self.enabled or method not in EXPENSIVE_UNAUTHENTICATED:
            return False, credit
        current = self.pow.difficulty
        usable = (credit is not None and credit.calls > 0 and self.clock() < credit.expires
                  and credit.bits >= current - GRACE_BITS)
        failed: ProofOfWorkRequired | None = None
        if solution is not None:
            try:
                bits = self.pow.redeem(solution.token, solution.nonce)
            except ProofOfWorkRequired as exc:
                failed = exc  # e.g. spent on a try that was shed: the credit may cover it
            else:
                if bits >= self.priority_bits - GRACE_BITS:
                    return True, Credit(bits, self.clock() + self.pow.ttl,
                                        self.calls_per_proof - 1)
                if not usable:
                    return False, credit  # enough for the load, too little for priority
        if usable:
            assert credit is not None
            credit.calls -= 1
            return True, credit
        if current > 0:
            if failed is not None:
                raise failed
            self.pow.verify(None, None)  # raises POW_REQUIRED (and counts it)
        return False, credit  # calm: no work asked, and a stale solution does no harm

    def spare_until(self, proven: bool, credit: Credit | None) -> float:
        """Until when random early drop should pass over a connection not logged in that
        just got a call past the limits and the proof check: while its solved work is
        fresh, or for ``hello_deadline`` after an admitted call. Idle sockets (what a
        connection flood holds) are then the ones dropped, not a newcomer in the middle of
        signing up; while work is asked, only connections that bring it are spared."""
        if proven and credit is not None:
            return credit.expires
        return self.clock() + self.hello_deadline

    def check_login(self, address: str) -> None:
        """Code requests and sign-ins from one address (``logins.py``)."""
        self.logins.check_address(address)

    # -- control loop -----------------------------------------------------------------------
    async def start(self) -> None:
        # ensure() runs nft without blocking the loop and returns False (it logs why) where
        # nft is missing or not permitted.
        if self.mirror is not None and not await self.mirror.ensure():
            log.warning("--nft-set %s: nft is missing, not permitted, or failed; bans stay in "
                        "process only", self.settings.nft_set)
        await self.state.start()
        await self.logins.load()
        if self.enabled and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.logins.save()
        await self.state.stop()

    async def _tick_forever(self) -> None:
        # CoDel judges a queue when something arrives or leaves; this tick also judges queues
        # stuck behind hung work. Difficulty moves at most once a second anyway.
        ticks = 0
        period = self.settings.queue_target
        while True:
            expected = self.clock() + period
            await asyncio.sleep(period)
            lag = max(0.0, self.clock() - expected)
            # Rises at once, decays over a few ticks: a flood is answered immediately, and one
            # calm tick in the middle of it does not open the doors.
            self.loop_lag = lag if lag > self.loop_lag else 0.7 * self.loop_lag + 0.3 * lag
            self.scheduler.tick()
            ticks += 1
            if ticks * self.settings.queue_target >= 1.0:
                ticks = 0
                self.tick()

    def tick(self) -> None:
        """Once a second: proof-of-work difficulty follows the pressure on the
        unauthenticated classes; now and then the code baselines are saved."""
        self.logins.tick()
        self.difficulty.observe(max(self.scheduler.pressure(WorkClass.UNAUTHENTICATED),
                                    self.scheduler.pressure(WorkClass.PROVEN)))

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "admission": self.admission.stats(),
            "classes": self.scheduler.stats(),
            "pow_difficulty": self.pow.difficulty,
            "bans": {**self.bans.stats(), **self.penalties.stats()},
            "refused": dict(self.refused),
            "code_budgets": self.logins.status(),
            "probation": {"held": len(self.probation), "tickets_admitted": self.tickets_admitted},
            "loop_lag": round(self.loop_lag, 4),
            "known_addresses": len(self.known),
            "returns": self.returns.stats() if self.returns is not None else None,
        }


_NO_SLOT = contextlib.nullcontext()


__all__ = ["PROBATION", "Credit", "Decision", "Shield", "Ticket", "WorkClass"]
