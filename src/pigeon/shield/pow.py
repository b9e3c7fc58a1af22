"""Adaptive, stateless, signed proof-of-work for the unauthenticated expensive calls.

Requesting a login code, signing in and signing up cost the server real work (an SMS, a
password-grade check, a database write) while costing an attacker one frame. Under load the
server hands out a challenge and asks for a nonce whose hash has ``difficulty`` leading zero
bits: ~2**difficulty hashes for the client, one hash for the server.

Design, and where it follows or departs from Tor's onion-service PoW:

* **Stateless, signed challenges.** The token carries its issue time, its difficulty and a
  random salt, authenticated with HMAC-SHA256 under a server secret, so the server stores
  nothing per challenge and a flood of ``auth.challenge`` calls costs it no memory. Tor
  (proposal 327) publishes one seed per descriptor instead; we have a direct channel, so a
  per-request token is cheaper and lets the difficulty change within seconds.
* **Hashcash over SHA-256, a threshold, no priority queue.** Proposal 327 uses Equi-X (hard
  to speed up on GPUs) and serves intro requests in order of the effort each client chose.
  We use hashlib's SHA-256 because it is in the standard library and one hash verifies; a
  GPU attacker gains over our Python SDK, so the PoW only *prices* a flood and the
  scheduler, rate limits and bans still carry the rest. The server dictates the difficulty
  and the work either meets it or not.
* **A grace window, because a moving target makes honest clients lose.** A client that
  fetched a challenge a few seconds ago and solved it honestly must not be turned away
  because the difficulty rose meanwhile: that turns the PoW into a DoS on its own users,
  the failure mode Tor proposal 362 describes for 327's control loop (an attacker pushes
  the suggested effort up and honest clients with stale effort are never served). A token
  stays valid while its difficulty is >= the current one minus ``GRACE_BITS``.
* **Replay protection** keeps the MACs of used tokens until they expire, in a bounded set
  (oldest evicted first). It is per process: with several server processes sharing a
  secret, a token can be spent once per process, which bounds the gain at the process count.

:func:`solve` is the client half (in :mod:`pigeon.protocol.pow`); the SDK runs it in a thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from typing import NoReturn

from pigeon.protocol.errors import ProofOfWorkRequired
from pigeon.protocol.pow import (
    MAX_BITS, MAX_TOKEN_LENGTH, TOKEN_LAYOUT, TOKEN_SIZE, TOKEN_VERSION, solve, work_bits,
)

from .state import ReplaySet, SpentTokens

__all__ = ["DifficultyController", "ProofOfWork", "solve", "work_bits"]

Clock = Callable[[], float]

GRACE_BITS = 2  # a token this many bits easier than the current difficulty is still accepted
CLOCK_SKEW = 5.0  # seconds a token's issue time may lie in the future (several processes)

# The token's layout and the work check are the protocol's (pigeon.protocol.pow); the secret,
# expiry and replay protection are this module's.
_HEADER = TOKEN_LAYOUT
_VERSION = TOKEN_VERSION
_TOKEN_SIZE = TOKEN_SIZE


class DifficultyController:
    """Turns a pressure reading into a difficulty: up fast, down slowly, zero when calm.

    ``observe(pressure)`` is fed how overloaded the unauthenticated class is (e.g.
    ``Scheduler.pressure(WorkClass.UNAUTHENTICATED)``): above ``HIGH`` the difficulty rises by
    ``step`` bits, at most once per ``raise_every`` seconds so that one burst of readings does
    not jump straight to the maximum; after ``calm_after`` seconds below ``LOW`` it falls by
    ``step``, and again after each further ``calm_after``. The band between LOW and HIGH holds
    the difficulty still, so it does not oscillate around one threshold. Each step doubles
    or halves the work by 2**step; ``max_bits`` caps what an attacker who keeps the pressure
    high can make honest newcomers pay (Tor proposal 362: the control loop must not itself
    become the DoS). Logged-in users never pay it.
    """

    HIGH = 0.8
    LOW = 0.3

    def __init__(
        self,
        min_bits: int = 0,
        max_bits: int = 24,
        step: int = 2,
        calm_after: float = 5.0,
        clock: Clock = time.monotonic,
        raise_every: float = 1.0,
    ) -> None:
        if not 0 <= min_bits <= max_bits <= MAX_BITS or step < 1:
            raise ValueError("need 0 <= min_bits <= max_bits <= 64 and step >= 1")
        self.min_bits = min_bits
        self.max_bits = max_bits
        self.step = step
        self.calm_after = calm_after
        self.raise_every = raise_every
        self.clock = clock
        self.bits = min_bits
        self.last_pressure = 0.0
        self._last_raise: float | None = None
        self._calm_since: float | None = None

    def observe(self, pressure: float) -> int:
        """Feed one pressure reading; returns the (possibly new) difficulty."""
        now = self.clock()
        self.last_pressure = pressure
        if pressure > self.HIGH:
            self._calm_since = None
            if self._last_raise is None or now - self._last_raise >= self.raise_every:
                self.bits = min(self.max_bits, self.bits + self.step)
                self._last_raise = now
        elif pressure < self.LOW:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= self.calm_after:
                self.bits = max(self.min_bits, self.bits - self.step)
                self._calm_since = now  # the next step down needs another calm period
        else:
            self._calm_since = None
        return self.bits


class ProofOfWork:
    """Issues and verifies challenges; see the module docstring.

    The difficulty is the attached ``controller``'s ``bits`` when there is one, else a fixed
    value set through the ``difficulty`` property (0 by default: no work required).
    ``clock`` is wall-clock time because a token's issue time must mean the same thing to
    every server process sharing the secret and across a restart.
    """

    def __init__(
        self,
        secret: bytes,
        clock: Clock = time.time,
        ttl: float = 60.0,
        replay_capacity: int = 200_000,
        controller: DifficultyController | None = None,
        replay: ReplaySet | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the proof-of-work secret needs at least 16 bytes")
        self._secret = secret
        self.clock = clock
        self.ttl = ttl
        self.controller = controller
        self._fixed = 0
        # Spent solutions: the shield's state (state.py) when it shares one across workers.
        self.replay = replay if replay is not None else SpentTokens(replay_capacity)
        self.issued = 0
        self.accepted = 0
        self.rejected: dict[str, int] = {"POW_REQUIRED": 0, "POW_INVALID": 0}

    @property
    def difficulty(self) -> int:
        return self.controller.bits if self.controller is not None else self._fixed

    @difficulty.setter
    def difficulty(self, bits: int) -> None:
        if self.controller is not None:
            raise AttributeError("the difficulty follows the controller: feed it pressure")
        if not 0 <= bits <= MAX_BITS:
            raise ValueError(f"difficulty must be within 0..{MAX_BITS} bits")
        self._fixed = bits

    def challenge(self, min_bits: int = 0) -> tuple[str, int, float]:
        """A fresh token at the current difficulty (at least ``min_bits``):
        ``(token, difficulty, expires_in)``."""
        difficulty = max(self.difficulty, min(min_bits, MAX_BITS))
        issued_ms = int(self.clock() * 1000)
        header = _HEADER.pack(_VERSION, issued_ms, difficulty, os.urandom(12))
        mac = hmac.new(self._secret, header, hashlib.sha256).digest()
        self.issued += 1
        token = base64.urlsafe_b64encode(header + mac).rstrip(b"=").decode("ascii")
        return token, difficulty, self.ttl

    def verify(self, token: str | None, nonce: int | None) -> None:
        """Accept the solution or raise ProofOfWorkRequired (POW_REQUIRED / POW_INVALID).

        Each token is good for one call: a solved token is recorded until it expires.
        """
        if self.difficulty == 0:
            return  # calm: no work asked, whatever the client sent
        if token is None or nonce is None:
            self._reject("POW_REQUIRED", "solve auth.challenge and send the solution")
        self.redeem(token, nonce)

    def redeem(self, token: str, nonce: int, min_bits: int = 0) -> int:
        """Check a solution whatever the load, spend it, and return its difficulty; raise
        POW_INVALID unless it is this server's, unexpired, unused, solved, and at most
        ``GRACE_BITS`` easier than the current difficulty (or ``min_bits``, if higher).

        The shield calls this for solutions that buy priority (an admission ticket, a code
        while the budget for calls without proof is spent): they must prove work even
        when the load asks for none."""
        required = max(self.difficulty, min_bits)
        issued, difficulty, mac = self._open(token)
        now = self.clock()
        if issued > now + CLOCK_SKEW:
            self._reject("POW_INVALID", "challenge issued in the future")
        if now >= issued + self.ttl:
            self._reject("POW_INVALID", "challenge expired: fetch a new one")
        if difficulty < required - GRACE_BITS:
            self._reject("POW_INVALID", "challenge too easy for the current load: fetch a new one")
        if not 0 <= nonce < 1 << 64 or work_bits(token, nonce) < difficulty:
            self._reject("POW_INVALID", "the nonce does not solve the challenge")
        if not self.replay.spend(mac, issued + self.ttl, now):
            self._reject("POW_INVALID", "challenge already used: fetch a new one")
        self.accepted += 1
        return difficulty

    def stats(self) -> dict[str, object]:
        return {
            "difficulty": self.difficulty,
            "issued": self.issued,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "replay_set": len(self.replay),
            "replay_evictions": self.replay.evictions,
        }

    # -- internals -------------------------------------------------------------------------
    def _open(self, token: str) -> tuple[float, int, bytes]:
        """Decode and authenticate a token; returns (issued, difficulty, mac)."""
        if len(token) > MAX_TOKEN_LENGTH:
            self._reject("POW_INVALID", "malformed challenge token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            self._reject("POW_INVALID", "malformed challenge token")
        # b64decode skips characters outside the alphabet and ignores spare low bits: insist
        # on the one canonical spelling so a token has exactly one string form.
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
        if len(raw) != _TOKEN_SIZE or canonical != token:
            self._reject("POW_INVALID", "malformed challenge token")
        header, mac = raw[: _HEADER.size], raw[_HEADER.size :]
        expected = hmac.new(self._secret, header, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            self._reject("POW_INVALID", "challenge not issued by this server")
        version, issued_ms, difficulty, _salt = _HEADER.unpack(header)
        if version != _VERSION or difficulty > MAX_BITS:
            self._reject("POW_INVALID", "unsupported challenge token")
        return issued_ms / 1000, difficulty, mac

    def _reject(self, code: str, message: str) -> NoReturn:
        self.rejected[code] += 1
        raise ProofOfWorkRequired(message, code=code)
