"""Typing across regions (issue 12, deliverable 6; docs/architecture.md, "Regions"): in a
private chat whose other side is homed in another region, the typing notice goes to that
region with one core NATS publish on ``<prefix>.region.<its name>.typing``: not JetStream,
not the outbox, never stored. Lost while that region is away, as a notice to a device that
is offline is; nobody misses a typing notice from a minute ago.

Bounded both ways by sender: this node sends at most ``TYPING_RATE`` per sender (past the
shield's per-account call rate, which bounds the call itself), and the receiving region takes
at most as many per sender, whoever published them (any NATS client of the supercluster can
publish), and at most ``REGION_TYPING_RATE`` from each other region in all, before reading
the store (the sender is only claimed: forged ids would pass the first bound). What it
takes it checks: it names a sender of the region it claims to come from and
a recipient homed here, and the two have a private chat here; the recipient is then told
exactly as local typing tells (not if they blocked the sender, nor a request not accepted).
Anything else is dropped and counted (a warning at most once a minute).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from pigeon.domain.regions import homed_in
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.regions import CrossTyping, encode
from pigeon.protocol.updates import Typing
from pigeon.shield.ratelimit import KeyedLimiter, Rate

if TYPE_CHECKING:
    from .regions import RegionLink

log = logging.getLogger("pigeon.regions")

#: typing notices per sender, sent to or taken from another region: a client repeats one
#: every few seconds while its person types, so a burst of three and one a second lose none
TYPING_RATE = Rate(count=1, seconds=1, burst=3)
#: typing notices taken from one other region in all, before any is looked up: a sender id
#: is only what the notice claims, so the limiter per sender alone bounds nothing
REGION_TYPING_RATE = Rate(count=200, seconds=1, burst=400)
#: seconds between warnings about dropped notices (each is counted; logged at debug)
DROP_WARN_EVERY = 60.0
#: bytes of one notice at most (three small fields; anything longer is junk)
MAX_TYPING_BYTES = 256


def typing_subject(prefix: str, region: str) -> str:
    return f"{prefix}.region.{region}.typing"


class TypingRelay:
    def __init__(self, link: RegionLink) -> None:
        self.link = link
        self.sent = KeyedLimiter(TYPING_RATE)
        self.taken = KeyedLimiter(TYPING_RATE)
        self.from_region = KeyedLimiter(REGION_TYPING_RATE, max_keys=64)
        self.dropped = 0  # refused on receipt: malformed, forged, over the rate, no such chat
        self._warned = -DROP_WARN_EVERY

    async def send(self, user_id: int, chat_id: int, others: list[int]) -> None:
        """``user_id`` is typing in ``chat_id`` (they are a member: ``others`` are the other
        members local typing told); its other side, if homed elsewhere, is told there."""
        link = self.link
        if all(homed_in(link.table, other, link.name) for other in others):
            return  # the usual case: no second read
        if self.sent.take(str(user_id)) > 0:
            return
        sides = await link.services.store.typing_peer(user_id, chat_id)
        nc = link.nc
        if sides is None or nc is None or not nc.is_connected:
            return
        notice = CrossTyping(origin=link.name, sender_id=user_id, recipient_id=sides.remote_id)
        try:
            await nc.publish(typing_subject(link.prefix, sides.remote_region), encode(notice))
        except Exception as exc:  # NATS away: typing is lost, as it may be
            log.debug("regions: typing to %s not sent: %s", sides.remote_region, exc)

    async def receive(self, msg: Any) -> None:
        """A notice from another region; whatever is wrong with it, it is dropped."""
        link = self.link
        try:
            if len(msg.data) > MAX_TYPING_BYTES:
                raise ValueError(f"{len(msg.data)} bytes")
            notice = msgspec.msgpack.decode(msg.data, type=CrossTyping)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            return self._drop("malformed typing notice dropped: %s", exc)
        if (notice.origin not in link.others
                or not homed_in(link.table, notice.sender_id, notice.origin)
                or not homed_in(link.table, notice.recipient_id, link.name)):
            return self._drop("typing notice from %s naming %d and %d dropped: not theirs",
                              notice.origin, notice.sender_id, notice.recipient_id)
        if (self.taken.take(str(notice.sender_id)) > 0
                or self.from_region.take(notice.origin) > 0):
            self.dropped += 1
            return None  # over the rate: not worth a log line each
        try:
            found = await link.services.store.typing_audience(
                notice.sender_id, notice.recipient_id, limit=1)
        except PigeonError:
            return None  # the store failing: a typing notice is not worth a retry
        if found is None:
            return self._drop("typing notice of %d to %d dropped: no chat of the two here",
                              notice.sender_id, notice.recipient_id)
        chat_id, targets = found
        if targets:
            link.services.bus.deliver_ephemeral(
                targets, Typing(pts=0, chat_id=chat_id, user_id=notice.sender_id))
        return None

    def _drop(self, what: str, *args: object) -> None:
        """Counted; a warning at most every DROP_WARN_EVERY seconds (anyone on NATS can
        publish junk: a line each would be theirs to flood the log with), else debug."""
        self.dropped += 1
        now = time.monotonic()
        if now - self._warned < DROP_WARN_EVERY:
            log.debug("regions: " + what, *args)
            return
        self._warned = now
        log.warning("regions: " + what + " (%d dropped so far; more at debug level)",
                    *args, self.dropped)

