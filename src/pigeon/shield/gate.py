"""The shield at accept time: which sockets come in, before a byte of them is read.

A mixin of :class:`~.guard.Shield`, which sets up what these methods use: bans first (a
banned address gets in only by the token-only door, penalties.py), then the ration for
addresses no session came from (always, and harder while the event loop lags), then
admission's caps. A socket the ration refused may wait on probation for its request line
and come in with a solved challenge (``ticket.py``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pigeon.protocol.buckets import Rate, TokenBucket
from pigeon.protocol.errors import ProofOfWorkRequired

from .admission import Admission, Decision, Ticket
from .pacing import ReturnPacer
from .penalties import Penalties
from .pow import ProofOfWork
from .state import Bans, KnownAddresses
from .ticket import challenge_response, refusal_response, ticket_in_request, waiting_in_request

# Seconds a socket refused at an admission cap is told to wait (Retry-After): the server is
# full (total) for a while; a busy address or network frees up sooner.
ADMISSION_RETRY_AFTER = {"total": 5, "per_address": 2, "per_prefix": 2}

# What Shield.accept answers for a socket that the ration refused: hold it, read its request
# line, and let it in only with a proof-of-work ticket (``ticket.py``). A caller that does
# not know probation sees a refusal (no ticket) and drops the socket, as before.
PROBATION = Decision(None, "probation")


@dataclass
class Credit:
    """Solved work a connection brought (a ticket at accept, or a call's ``pow``): it covers
    the connection's next ``calls`` expensive calls, until it expires or falls more than
    GRACE_BITS below the current difficulty. One sign-up then costs one solution."""

    bits: int
    expires: float
    calls: int


class AcceptGate:
    # Set by Shield.__init__.
    enabled: bool
    clock: Callable[[], float]
    admission: Admission
    bans: Bans
    penalties: Penalties
    known: KnownAddresses
    pow: ProofOfWork
    priority_bits: int
    calls_per_proof: int
    probation: OrderedDict[Any, float]
    max_probation: int
    probation_wait: float
    tickets_admitted: int
    refused: dict[str, int]
    loop_lag: float
    lag_target: float
    accept_rate: Rate
    accept_rate_unknown: Rate
    _accept_bucket: TokenBucket
    _unknown_bucket: TokenBucket
    returns: ReturnPacer | None
    accept_rate_waiting: Rate
    _waiting_bucket: TokenBucket

    # -- accept -----------------------------------------------------------------------------
    def accept(self, address: str) -> Decision | None:
        """None: drop the connection (banned). :data:`PROBATION`: the ration refused it, but a
        ticket in its request line may still let it in (:meth:`admit_ticket`). Otherwise
        the admission decision.

        A banned address that logged-in sessions use still gets a few sockets through the
        token-only door (penalties.py): the connection's hello must carry a valid token."""
        banned = self.enabled and self.bans.banned(address) > 0
        if banned and not self.penalties.door_open(address):
            self._refuse("banned")
            return None
        if self.enabled and not banned and address not in self.known:
            # Sockets from addresses no session came from are rationed always, and harder
            # while the loop lags: a handshake costs about a millisecond of the one core that
            # serves everyone, and the onset of a flood arrives before any lag can be seen.
            # Not the peer's fault, so no strike; an honest client retries with backoff.
            now = self.clock()
            if self._unknown_bucket.take(self.accept_rate_unknown, now) > 0 or (
                    self.loop_lag > self.lag_target
                    and self._accept_bucket.take(self.accept_rate, now) > 0):
                self._refuse("overloaded_accept")
                return PROBATION if self.max_probation > 0 else None
        elif self.returns is not None and not banned:
            # A known address: one of our users' devices, likely coming back with thousands
            # of others. In when the return pacer has room; else told its slot (pacing.py).
            wait = self.returns.admit()
            if wait > 0:
                self._refuse("paced_return")
                return Decision(None, "paced_return", retry_after=wait)
            decision = self._admit(address)
            if decision.ticket is None:
                self.returns.finished(False)
            else:
                decision.ticket.paced = True
            return decision
        return self._admit(address, banned)

    def admit_waiting(self, address: str, head: bytes) -> Decision | None:
        """A socket the return pacer turned away sent ``head``: if it says its device has a
        call waiting (``?waiting=1``, the SDK's when its user is chatting) it comes in now,
        up to ``accept_rate_waiting`` such sockets a second, past the pacer; else None (it
        is told its slot). The people already chatting are served first, even in a herd."""
        if not waiting_in_request(head) or self._waiting_bucket.take(
                self.accept_rate_waiting, self.clock()) > 0:
            return None
        self._refuse("waiting_admitted")  # counted: let in past the pacer
        return self._admit(address)

    def promote(self, ticket: Ticket) -> None:
        """The connection logged in: it leaves the unauthenticated pool (and the pacer)."""
        if ticket.paced and self.returns is not None:
            ticket.paced = False
            self.returns.finished(True)
        self.admission.promote(ticket)

    def release(self, ticket: Ticket) -> None:
        """The connection closed (safe to call twice)."""
        if ticket.paced and self.returns is not None:
            ticket.paced = False
            self.returns.finished(False)
        self.admission.release(ticket)

    def _admit(self, address: str, banned: bool = False) -> Decision:
        decision = self.admission.admit(address, self.clock())
        if decision.ticket is None:
            self._refuse(decision.reason or "admission")
            self.strike(address, decision.reason or "admission")
        elif banned:
            self._refuse("banned_token_only")  # counted: admitted, but for a token only
        return decision

    def admit_ticket(self, address: str, head: bytes) -> tuple[Decision | None, Credit | None]:
        """A socket on probation sent ``head`` (its request line at least). With a valid,
        unspent ticket of at least ``pow_priority_bits`` it skips the ration: the admission
        decision and the credit its work buys. Without: (None, None)."""
        found = ticket_in_request(head)
        if found is None:
            return None, None
        try:
            bits = self.pow.redeem(found[0], found[1], min_bits=self.priority_bits)
        except ProofOfWorkRequired:
            self._refuse("bad_ticket")
            return None, None
        self.tickets_admitted += 1
        credit = Credit(bits, self.clock() + self.pow.ttl, self.calls_per_proof)
        return self._admit(address), credit

    def refusal_response(self, reason: str | None, retry_after: float | None = None) -> bytes:
        """The 503 answer to a socket over an admission cap: with when to come back, so a
        returning device waits that long instead of hammering (issue 13); ``retry_after``:
        the refusal's own (a return slot), in whole seconds as HTTP has them."""
        if retry_after is not None:
            return refusal_response(max(1, math.ceil(retry_after)))
        return refusal_response(ADMISSION_RETRY_AFTER.get(reason or "", 1))

    def challenge_response(self) -> bytes:
        """The 503 answer that hands a rationed socket a challenge to solve."""
        token, bits, _ = self.pow.challenge(min_bits=self.priority_bits)
        return challenge_response(token, bits)

    def hold(self, handle: Any) -> tuple[bool, Any]:
        """Put a socket on probation: ``(held, evicted)``. When the pool is full, the oldest
        socket is evicted (the caller closes it) if it has waited a quarter of
        ``probation_wait``, far longer than an honest client takes to send its request
        line; otherwise the new socket is not held (the caller drops it). Never evicting the
        young matters: the event loop accepts sockets in bursts and reads them only after,
        so evicting the oldest unconditionally would let one burst evict itself whole."""
        now = self.clock()
        evicted = None
        if len(self.probation) >= self.max_probation:
            oldest, since = next(iter(self.probation.items()))
            if now - since < self.probation_wait / 4:
                self._refuse("probation_full")
                return False, None
            del self.probation[oldest]
            self._refuse("probation_evicted")
            evicted = oldest
        self.probation[handle] = now
        return True, evicted

    def unhold(self, handle: Any) -> None:
        self.probation.pop(handle, None)

    def strike(self, address: str, reason: str, *, session_id: int | None = None,
               user_id: int | None = None) -> None:
        """A limit tripped. A logged-in connection passes its session and account: they are
        penalised, not the address that other people's sessions share (penalties.py)."""
        if self.enabled:
            self.penalties.strike(address, reason, session_id, user_id)

    def _refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
