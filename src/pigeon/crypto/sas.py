"""Short authentication strings (SAS): two devices prove to their people that each holds the
Ed25519 key the other got from the server (issue 9, deliverable 6). Pure: fed with
:class:`Verification` steps and the time, it returns the steps to send; no I/O, no clock of
its own. The SDK (:mod:`pigeon.client.verification`) moves the steps over Olm envelopes.

The exchange follows Matrix's ``m.sas.v1`` with vodozemac's :class:`vodozemac.Sas`::

    initiator                               responder
    start            ───────────────────▶
                     ◀───────────────────   accept (commitment = SHA-256 of its key)
    key (its own)    ───────────────────▶
                     ◀───────────────────   key (checked against the commitment)
          both show 7 emoji and 3 numbers; each person confirms they match
    mac (of its key) ◀──────────────────▶   mac (checked with hmac.compare_digest)
    done             ◀──────────────────▶   done

The commitment makes the responder choose its key before it sees the initiator's, so a
man in the middle gets one guess at a 2^-42 collision, not many. The MACs bind each
device's Ed25519 key (as ``keys.query`` gave it) to the shared secret: a server that
swapped a key in fails here even if the people compared the emoji. Every string that goes
into the SAS or a MAC names both devices and the transaction, so nothing is replayed
between verifications.

A step for another transaction, or from a device not in this one, is ignored; a step
identical to one already taken (a duplicate envelope) is ignored, and so is a step this
version does not know (a newer one's); any other step out of order cancels with
``unexpected_message``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum

import vodozemac

from .payloads import Verification, encode_payload

#: the steps this version knows; a newer version's others are ignored, not an error
STEPS = frozenset({"start", "accept", "key", "mac", "cancel", "done"})
#: how long a verification may wait for the other side or for a person, in seconds
DEFAULT_TIMEOUT = 600.0

# Matrix's SAS emoji table (spec, "SAS method: emoji"), index -> (emoji, name): chosen there
# to be told apart across cultures and fonts, and familiar to people who verified on Element.
EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"), ("🦄", "Unicorn"),
    ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"), ("🐼", "Panda"), ("🐓", "Rooster"),
    ("🐧", "Penguin"), ("🐢", "Turtle"), ("🐟", "Fish"), ("🐙", "Octopus"),
    ("🦋", "Butterfly"), ("🌷", "Flower"), ("🌳", "Tree"), ("🌵", "Cactus"),
    ("🍄", "Mushroom"), ("🌏", "Globe"), ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"),
    ("🍌", "Banana"), ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"), ("🎩", "Hat"),
    ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"), ("👍", "Thumbs Up"),
    ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"), ("🎁", "Gift"),
    ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"), ("📎", "Paperclip"),
    ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"), ("🔨", "Hammer"), ("☎️", "Telephone"),
    ("🏁", "Flag"), ("🚂", "Train"), ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"),
    ("🏆", "Trophy"), ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)


class Cancel(str, Enum):
    """Why a verification ended without success (``code`` of a cancel step)."""

    USER = "user"                          # a person stopped it
    MISMATCHED_SAS = "mismatched_sas"      # a person said the emoji differ
    KEY_MISMATCH = "key_mismatch"          # a MAC or the commitment did not check out
    UNEXPECTED = "unexpected_message"      # a step out of order
    TIMEOUT = "timeout"
    ACCEPTED_ELSEWHERE = "accepted"        # another device of the user took it


class State(str, Enum):
    STARTED = "started"        # initiator: start sent, waiting for an accept
    ACCEPTED = "accepted"      # responder: accept sent, waiting for the initiator's key
    KEY_SENT = "key_sent"      # initiator: key sent, waiting for the responder's
    SHOWING = "showing"        # both keys known: the people compare the SAS
    CONFIRMED = "confirmed"    # this side's person confirmed; waiting for the other MAC
    VERIFIED = "verified"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Party:
    """One device in a verification, with the Ed25519 key the server's ``keys.query`` gave."""

    user_id: int
    device_id: int
    ed25519: str

    def label(self) -> str:
        return f"{self.user_id}|{self.device_id}|{self.ed25519}"


@dataclass(frozen=True)
class ShortCode:
    """What both people compare: seven emoji (indices into :data:`EMOJI`) and three numbers
    (1000-9191)."""

    emoji: tuple[int, ...]
    decimals: tuple[int, int, int]

    def words(self) -> list[tuple[str, str]]:
        return [EMOJI[i] for i in self.emoji]


def new_transaction_id() -> str:
    return secrets.token_urlsafe(18)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _commitment(transaction_id: str, key: str) -> str:
    return _b64(hashlib.sha256(f"PIGEON_SAS_COMMIT|{transaction_id}|{key}".encode()).digest())


class SasFlow:
    """One verification from one side. Build with :meth:`start` or :meth:`respond`; feed
    steps with :meth:`receive`; :attr:`short_code` once SHOWING; :meth:`confirm` or
    :meth:`reject` for the person's answer; :meth:`expire` with the time now."""

    def __init__(self, me: Party, transaction_id: str, *, initiator: bool,
                 candidates: list[Party], now: float, timeout: float) -> None:
        self.me = me
        self.transaction_id = transaction_id
        self.initiator = initiator
        self.candidates = {(p.user_id, p.device_id): p for p in candidates}
        self.peer: Party | None = candidates[0] if len(candidates) == 1 else None
        self.state = State.STARTED if initiator else State.ACCEPTED
        self.deadline = now + timeout
        self.short_code: ShortCode | None = None
        self.cancel_code: Cancel | str | None = None
        self.cancel_reason = ""
        self.cancelled_by_peer = False
        self._sas: vodozemac.Sas | None = vodozemac.Sas()
        self._established: vodozemac.EstablishedSas | None = None
        self._their_key: str | None = None
        self._their_commitment: str | None = None
        self._their_mac: Verification | None = None  # a MAC that came before our confirm
        self._taken: set[bytes] = set()

    # -- beginning --------------------------------------------------------------------------
    @classmethod
    def start(cls, me: Party, devices: list[Party], *, now: float,
              timeout: float = DEFAULT_TIMEOUT,
              transaction_id: str | None = None) -> tuple[SasFlow, Verification]:
        """Verify one of ``devices`` (the first to accept): the flow and the start step to
        send to each of them."""
        if not devices:
            raise ValueError("no device to verify")
        flow = cls(me, transaction_id or new_transaction_id(), initiator=True,
                   candidates=devices, now=now, timeout=timeout)
        return flow, flow._step("start")

    @classmethod
    def respond(cls, me: Party, initiator: Party, start: Verification, *, now: float,
                timeout: float = DEFAULT_TIMEOUT) -> tuple[SasFlow, Verification]:
        """Take ``start`` from ``initiator``: the flow and the accept step to send back."""
        if start.step != "start":
            raise ValueError("respond to a start step")
        flow = cls(me, start.transaction_id, initiator=False, candidates=[initiator],
                   now=now, timeout=timeout)
        flow._taken.add(encode_payload(start))
        assert flow._sas is not None
        key = flow._sas.public_key.to_base64()
        return flow, flow._step("accept", commitment=_commitment(flow.transaction_id, key))

    # -- taking steps -----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in (State.VERIFIED, State.CANCELLED)

    def receive(self, sender: Party, step: Verification, now: float) -> list[Verification]:
        """Take ``step`` from ``sender``: the steps to send back to the peer."""
        if step.transaction_id != self.transaction_id:
            return []
        if self.peer is not None and sender != self.peer:
            return []  # another device: not in this verification (or not its key)
        if self.peer is None and (sender.user_id, sender.device_id) not in self.candidates:
            return []
        if self.peer is None and sender != self.candidates[(sender.user_id, sender.device_id)]:
            return []
        raw = encode_payload(step)
        if raw in self._taken or self.done or step.step not in STEPS:
            return []  # a duplicate, or late: nothing changes
        self._taken.add(raw)
        if self.expire(now):
            return [self.cancel_step()]
        if step.step == "cancel":
            self.state = State.CANCELLED
            self.cancel_code = _cancel_code(step.code)
            self.cancel_reason = step.reason
            self.cancelled_by_peer = True
            return []
        handler = {
            (State.STARTED, "accept"): self._on_accept,
            (State.ACCEPTED, "key"): self._on_key,
            (State.KEY_SENT, "key"): self._on_key,
            (State.SHOWING, "mac"): self._on_mac,
            (State.CONFIRMED, "mac"): self._on_mac,
        }.get((self.state, step.step))
        if handler is None:
            if step.step == "done" and self.state in (State.SHOWING, State.CONFIRMED):
                return []  # the peer is through; our own MAC check decides
            return self.cancel(Cancel.UNEXPECTED, f"a {step.step[:16]!r} step in state "
                                                  f"{self.state.value}")
        if self.peer is None:
            self.peer = self.candidates[(sender.user_id, sender.device_id)]
        return handler(step)

    def _on_accept(self, step: Verification) -> list[Verification]:
        if step.commitment is None:
            return self.cancel(Cancel.UNEXPECTED, "an accept without a commitment")
        self._their_commitment = step.commitment
        self.state = State.KEY_SENT
        assert self._sas is not None
        return [self._step("key", key=self._sas.public_key.to_base64())]

    def _on_key(self, step: Verification) -> list[Verification]:
        if step.key is None:
            return self.cancel(Cancel.UNEXPECTED, "a key step without a key")
        if self.initiator:
            assert self._their_commitment is not None
            if not hmac.compare_digest(_commitment(self.transaction_id, step.key),
                                       self._their_commitment):
                return self.cancel(Cancel.KEY_MISMATCH, "the key does not match its commitment")
        assert self._sas is not None
        own_key = self._sas.public_key.to_base64()
        try:
            self._established = self._sas.diffie_hellman(
                vodozemac.Curve25519PublicKey.from_base64(step.key))
        except (vodozemac.KeyException, vodozemac.SasException) as exc:
            return self.cancel(Cancel.KEY_MISMATCH, f"unusable key: {exc}")
        self._sas = None
        self._their_key = step.key
        self._show(own_key)
        self.state = State.SHOWING
        return [] if self.initiator else [self._step("key", key=own_key)]

    def _show(self, own_key: str) -> None:
        assert self._established is not None and self.peer is not None
        assert self._their_key is not None
        first, second = (self.me, own_key), (self.peer, self._their_key)
        if not self.initiator:
            first, second = second, first
        info = (f"PIGEON_SAS|{first[0].label()}|{first[1]}|{second[0].label()}|{second[1]}|"
                f"{self.transaction_id}")
        got = self._established.bytes(info)
        first_n, second_n, third_n = got.decimals
        self.short_code = ShortCode(tuple(got.emoji_indices), (first_n, second_n, third_n))

    def _mac_info(self, sender: Party, receiver: Party, what: str) -> str:
        return f"PIGEON_SAS_MAC|{sender.label()}|{receiver.label()}|{self.transaction_id}|{what}"

    def _on_mac(self, step: Verification) -> list[Verification]:
        if step.mac is None or step.keys_mac is None:
            return self.cancel(Cancel.UNEXPECTED, "a mac step without its MACs")
        if self.state is State.SHOWING:
            self._their_mac = step  # checked once our person confirmed
            return []
        return self._check_mac(step)

    def _check_mac(self, step: Verification) -> list[Verification]:
        assert self._established is not None and self.peer is not None
        key_id = f"ed25519:{self.peer.device_id}"
        want_key = self._established.calculate_mac(
            self.peer.ed25519, self._mac_info(self.peer, self.me, key_id))
        want_ids = self._established.calculate_mac(
            key_id, self._mac_info(self.peer, self.me, "KEY_IDS"))
        assert step.mac is not None and step.keys_mac is not None
        # Both compared, always: no early exit that tells which one failed by its timing.
        key_ok = hmac.compare_digest(want_key.encode(), step.mac.encode())
        ids_ok = hmac.compare_digest(want_ids.encode(), step.keys_mac.encode())
        if not (key_ok and ids_ok):
            return self.cancel(Cancel.KEY_MISMATCH, "the other device does not hold the key "
                                                    "the server gave for it")
        self.state = State.VERIFIED
        return [self._step("done")]

    # -- the person's answer, time ----------------------------------------------------------
    def confirm(self, now: float) -> list[Verification]:
        """The person says the SAS matches: our MAC, and ``done`` if theirs checked out."""
        if self.state is not State.SHOWING:
            raise ValueError(f"nothing to confirm in state {self.state.value}")
        if self.expire(now):
            return [self.cancel_step()]
        assert self._established is not None and self.peer is not None
        key_id = f"ed25519:{self.me.device_id}"
        mac = self._step(
            "mac",
            mac=self._established.calculate_mac(self.me.ed25519,
                                                self._mac_info(self.me, self.peer, key_id)),
            keys_mac=self._established.calculate_mac(
                key_id, self._mac_info(self.me, self.peer, "KEY_IDS")))
        self.state = State.CONFIRMED
        if self._their_mac is not None:
            return [mac, *self._check_mac(self._their_mac)]
        return [mac]

    def reject(self) -> list[Verification]:
        """The person says the SAS differs."""
        return self.cancel(Cancel.MISMATCHED_SAS, "the emoji did not match")

    def cancel(self, code: Cancel, reason: str) -> list[Verification]:
        if self.done:
            return []
        self.state = State.CANCELLED
        self.cancel_code, self.cancel_reason = code, reason
        return [self.cancel_step()]

    def expire(self, now: float) -> bool:
        """Cancel for timeout if past the deadline; True if it was cancelled now."""
        if self.done or now < self.deadline:
            return False
        self.cancel(Cancel.TIMEOUT, "the verification took too long")
        return True

    def cancel_step(self) -> Verification:
        code = self.cancel_code.value if isinstance(self.cancel_code, Cancel) else "user"
        return self._step("cancel", code=code, reason=self.cancel_reason[:256])

    def _step(self, step: str, **fields: str) -> Verification:
        return Verification(transaction_id=self.transaction_id, step=step, **fields)


def _cancel_code(code: str) -> Cancel | str:
    try:
        return Cancel(code)
    except ValueError:
        return code[:32]  # a code from a newer version: shown as it is
