"""This node's link to the other regions (issue 12, deliverable 6; docs/architecture.md,
"Regions"), over NATS with JetStream, through the region's own nats-server (a gateway joins
the regions' clusters; each cluster is named as its region).

* **Lookups**: a phone homed elsewhere, or a username not known here, is asked of the other
  region on ``<prefix>.region.<name>.lookup`` (request/reply); no answer in time is
  REGION_UNAVAILABLE, never a hang.
* **Relay** (one task per other region): publishes this region's outbox rows, in order, to the
  stream ``PIGEON_XR_<src>_<dst>``, placed in this region's cluster so that publishing works
  while the other region is away, and deletes them once JetStream acknowledged them.
* **Consumer** (one task per other region): pulls from ``PIGEON_XR_<src>_<this>`` with the
  durable consumer ``<this>``; applies each message, edit, delete or read mark once (the
  store dedupes on sender and random_id, and on the stream sequence), after fetching the
  bytes of any file it carries (region_files.py), pushes it to the recipient's devices, and
  acknowledges only after the commit.
* **Files**: answers ``<prefix>.region.<this>.blob`` for blobs sent across regions.
  Order: each message is applied only if its stream sequence is the next one after the
  last applied (kept in the store, in the same transaction: ``region_inbox``). A message
  handed to a node that died (or to the pull request of a node killed with -9) comes again
  after ACK_WAIT; whatever came after it waits for it, unacknowledged, whichever nodes pull.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import nats
import nats.errors
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, Placement, StreamConfig
from nats.js.errors import NotFoundError

from pigeon.domain import regions as rules
from pigeon.domain.regions import RegionTable
from pigeon.protocol import regions as wire
from pigeon.protocol.region_groups import GroupAnswer, GroupCall
from pigeon.domain.streams import device_stream
from pigeon.protocol.regions import (
    CrossEnvelope, CrossGroup, CrossMessage, Found, GroupCross, Lookup, RemoteUser, UnknownCross,
)
from pigeon.protocol.errors import PigeonError, Unavailable

from .region_files import answer_blob, blob_subject, fetch_files
from .region_groups import take_group_call
from .region_keys import KnownDevices, answer_claim, answer_keys, claim_subject, keys_subject
from .region_stickers import StickerSets, set_subject
from .region_typing import TypingRelay, typing_subject
from .streams import follow_changes, publish

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("pigeon.regions")

LOOKUP_TIMEOUT = 2.0      # seconds another region has to answer a lookup
GROUP_CALL_TIMEOUT = 5.0  # seconds a group's region has to commit a forwarded call
#: bytes a second a forwarded call's lent blobs are assumed to cross at, at worst (a 4 MiB
#: file crossed at some 39 MiB/s on loopback; a link between regions is slower): each byte
#: lent adds its share to the call's wait
CARRY_RATE = 2 * 1024 * 1024
RELAY_POLL = 0.5          # seconds between outbox reads when nothing woke the relay
BATCH = 64                # messages of a stream unacknowledged at once, per region pair
OUTBOX_WATCH = 5.0        # seconds between counts of the outbox (for /metrics)
ACK_WAIT = 10.0           # seconds before JetStream redelivers an unacknowledged message


A = TypeVar("A")


def stream_name(source: str, destination: str) -> str:
    return f"PIGEON_XR_{source}_{destination}".upper().replace("-", "_")


class RegionLink:
    def __init__(self, services: Services, table: RegionTable, name: str) -> None:
        self.services = services
        self.table = table
        self.name = name
        self.others = [r.name for r in table.regions if r.name != name]
        settings = services.settings
        self.prefix = settings.bus_prefix
        self.urls = [url.strip() for url in settings.bus.split(",") if url.strip()]
        self.nc: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        # for /healthz and /metrics
        self.reachable: dict[str, bool] = {other: False for other in self.others}
        self.lag: dict[str, int] = {other: 0 for other in self.others}
        self.outbox: dict[str, int] = {other: 0 for other in self.others}
        # the outbox row the relay stopped at, one this version cannot send (else None)
        self.held: dict[str, int | None] = {other: None for other in self.others}
        self.relayed = 0
        # where chats live ("": here; region_groups.elsewhere), the reads of it under way,
        # and each (connection, chat)'s last forwarded call (region_groups.call_group)
        self.group_homes: dict[int, str] = {}
        self.home_reads: dict[int, asyncio.Future[str | None]] = {}
        self.forwarding: dict[tuple[int, int], asyncio.Future[None]] = {}
        self.group_calls: set[asyncio.Task[None]] = set()  # forwarded calls being answered
        # forwarded group calls: sent from here, done here, refused here (typed error)
        self.group_call_counts = {"forwarded": 0, "answered": 0, "refused": 0}
        self.applied = 0
        self.dropped = 0
        self.typing = TypingRelay(self)
        self.known_devices = KnownDevices()  # other regions' last word on their devices
        self.stickers = StickerSets(self)

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        region = self.table.get(self.name)
        await self.services.store.reserve_user_ids(region.first_id,
                                                   ((region.number + 1) << rules.ID_SHIFT) - 1)
        self._tasks.append(asyncio.create_task(self._run(), name="regions"))

    async def close(self) -> None:
        if self.group_calls:  # calls of other regions being done here: answered, if in time
            await asyncio.wait(list(self.group_calls), timeout=GROUP_CALL_TIMEOUT)
        for task in [*self._tasks, *self.group_calls]:
            task.cancel()
        for task in [*self._tasks, *self.group_calls]:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: PERF203
                pass
        if self.nc is not None:
            await self.nc.close()

    def kick(self) -> None:
        """Something was queued for another region: relay it now, not at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        self.nc = await self._connect()
        await self.nc.subscribe(f"{self.prefix}.region.{self.name}.lookup", queue="lookup",
                                cb=self._answer_lookup)
        await self.nc.subscribe(blob_subject(self.prefix, self.name), queue="blob",
                                cb=self._answer_blob)
        await self.nc.subscribe(typing_subject(self.prefix, self.name), queue="typing",
                                cb=self.typing.receive)
        await self.nc.subscribe(set_subject(self.prefix, self.name), queue="sticker_set",
                                cb=self.stickers.answer)
        await self.nc.subscribe(f"{self.prefix}.region.{self.name}.group", queue="group",
                                cb=self._answer_group)
        await self.nc.subscribe(keys_subject(self.prefix, self.name), queue="keys",
                                cb=self._answer_keys)
        await self.nc.subscribe(claim_subject(self.prefix, self.name), queue="claim",
                                cb=self._answer_claim)
        work = [self._forever(f"relay to {o}", lambda o=o: self._relay(o)) for o in self.others]
        work += [self._forever(f"consume from {o}", lambda o=o: self._consume(o))
                 for o in self.others]
        work.append(self._forever("outbox depth", self._watch_outbox))
        await asyncio.gather(*work)

    async def _watch_outbox(self) -> None:
        while True:
            depth = await self.services.store.outbox_depth()
            self.outbox = {other: depth.get(other, 0) for other in self.others}
            await asyncio.sleep(OUTBOX_WATCH)

    def health(self) -> dict[str, Any]:
        """For /healthz and /metrics: per other region, whether it answers (its stream's
        consumer, or a lookup), messages waiting for it here, and its messages not yet
        applied here."""
        return {"region": self.name, "others": {
            other: {"reachable": self.reachable[other], "outbox": self.outbox[other],
                    "lag": self.lag[other], "held": self.held[other]}
            for other in self.others},
            "relayed": self.relayed, "applied": self.applied, "dropped": self.dropped,
            "typing_dropped": self.typing.dropped, "group_calls": dict(self.group_call_counts)}

    async def _connect(self) -> Any:
        delay = 0.2
        while True:
            try:
                return await nats.connect(servers=self.urls, name=f"pigeon-region-{self.name}",
                                          connect_timeout=2, max_reconnect_attempts=-1,
                                          reconnect_time_wait=0.5)
            except Exception as exc:  # NATS away at start: local users are served; retry
                log.warning("regions: NATS at %s unreachable (%s); retrying",
                            ",".join(self.urls), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _forever(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` again after any failure (JetStream without quorum, the other region
        away, the store failing): what was not acknowledged is simply done again later."""
        delay = 0.2
        while True:
            try:
                await step()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("regions: %s: %s; retrying in %.1f s", what, exc or type(exc).__name__,
                         delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- lookups --------------------------------------------------------------------------------
    async def _answer_lookup(self, msg: Any) -> None:
        try:
            ask = msgspec.msgpack.decode(msg.data, type=Lookup)
            if (ask.phone is None) == (ask.username is None):
                raise ValueError("a lookup names a phone or a username")
            user = await self.services.store.local_user(
                phone=ask.phone, username_key=ask.username.lower() if ask.username else None)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("regions: malformed lookup dropped: %s", exc)
            return
        except PigeonError:
            return  # the store failing: "not found" would be a lie; the asker times out
        await msg.respond(wire.encode(Found(user=user)))

    async def _answer_blob(self, msg: Any) -> None:
        await answer_blob(self.services, msg)

    async def lookup(self, region: str, *, phone: str | None = None,
                     username: str | None = None) -> RemoteUser | None:
        """Ask ``region`` for an account homed there; REGION_UNAVAILABLE if it does not answer."""
        found = await self.ask(region, "lookup", Lookup(phone=phone, username=username), Found,
                               LOOKUP_TIMEOUT)
        if found.user is not None:
            if rules.region_of_id(self.table, found.user.id) != region:
                raise Unavailable(f"region {region} answered an id of another region",
                                  code="REGION_UNAVAILABLE")
            await self.services.store.remember_remote(found.user, region,
                                                      self.services.clock())
        return found.user

    async def _answer_keys(self, msg: Any) -> None:
        await answer_keys(self.services, self, msg)

    async def _answer_claim(self, msg: Any) -> None:
        await answer_claim(self.services, self, msg)

    async def _answer_group(self, msg: Any) -> None:
        take_group_call(self.services, msg, self.group_calls)

    async def group_call(self, region: str, call: GroupCall, carried: int = 0) -> GroupAnswer:
        """A call in a group homed in ``region``, done there (server/region_groups.py);
        REGION_UNAVAILABLE if it does not answer in time. ``carried``: the bytes of the
        blobs it lends, which the group's region fetches before it answers: the wait grows
        with them, else a file that takes longer than the fixed wait to fetch would time
        out on every retry and never get through."""
        self.group_call_counts["forwarded"] += 1
        return await self.ask(region, "group", call, GroupAnswer,
                              GROUP_CALL_TIMEOUT + carried / CARRY_RATE)

    async def ask(self, region: str, what: str, question: msgspec.Struct, answer: type[A],
                  timeout: float) -> A:
        """Request/reply on ``<prefix>.region.<region>.<what>``: REGION_UNAVAILABLE if the
        region does not answer in time (or answers nonsense), never a hang."""
        if self.nc is None or not self.nc.is_connected:
            raise Unavailable(f"region {region} cannot be reached (no NATS)",
                              code="REGION_UNAVAILABLE", retry_after=5)
        try:
            reply = await self.nc.request(f"{self.prefix}.region.{region}.{what}",
                                          wire.encode(question), timeout=timeout)
            answered = msgspec.msgpack.decode(reply.data, type=answer)
        except (NatsTimeout, NoRespondersError, asyncio.TimeoutError, nats.errors.Error):
            # (a connection closed or draining too: whatever NATS says, the region is away)
            self.reachable[region] = False
            raise Unavailable(f"region {region} does not answer; try again later",
                              code="REGION_UNAVAILABLE", retry_after=5) from None
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise Unavailable(f"region {region} answered nonsense",
                              code="REGION_UNAVAILABLE", retry_after=5) from None
        self.reachable[region] = True
        return answered

    # -- relay: outbox -> JetStream -------------------------------------------------------------
    async def _relay(self, destination: str) -> None:
        js = self.nc.jetstream()
        stream = stream_name(self.name, destination)
        subject = f"{self.prefix}.xr.{self.name}.{destination}"
        try:
            await js.stream_info(stream)
        except NotFoundError:  # created once, while the meta leader has quorum (both regions)
            await js.add_stream(StreamConfig(
                name=stream, subjects=[subject], placement=Placement(cluster=self.name),
                num_replicas=1, duplicate_window=120.0))
        store = self.services.store
        while True:
            rows = await store.outbox(destination, 256)
            sent: list[int] = []
            for row in rows:
                try:
                    message = wire.cross_of(row.kind, {"origin": self.name, **row.fields()})
                except (PigeonError, msgspec.DecodeError) as exc:
                    # A row this node cannot make a message of (written by a newer node of
                    # a rolling upgrade, or damaged): it and all after it stay, in order,
                    # for a node that can (docs/operations.md, "Upgrades").
                    if self.held[destination] != row.id:
                        log.error("regions: outbox row %d (%s) to %s cannot be sent by this "
                                  "version; it and the rows after it wait: %s", row.id,
                                  row.kind, destination, exc)
                    self.held[destination] = row.id
                    break
                # Nats-Msg-Id: a row published twice (a relay killed before its delete) is
                # stored once within the window; the consumer's dedupe covers the rest. A
                # message is named by its sender and random_id (as before: a relay of an
                # older version agrees), anything else by its row (an identity column).
                msg_id = (f"{row.sender.id}:{row.random_id}" if row.kind == "message"
                          else f"{row.kind}:{row.id}")
                await js.publish(subject, wire.encode(message), timeout=5.0,
                                 headers={"Nats-Msg-Id": msg_id})
                sent.append(row.id)
            else:
                self.held[destination] = None
            if sent:
                await store.outbox_done(sent)
                self.relayed += len(sent)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), RELAY_POLL)
            except asyncio.TimeoutError:
                pass

    # -- consumer: JetStream -> this region's store -----------------------------------------------
    async def _consume(self, source: str) -> None:
        js = self.nc.jetstream()
        stream = stream_name(source, self.name)
        subject = f"{self.prefix}.xr.{source}.{self.name}"
        sub = await js.pull_subscribe(
            subject, durable=self.name, stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=BATCH,
                                  ack_wait=ACK_WAIT, max_deliver=-1))
        self.reachable[source] = True
        while True:
            try:
                batch = await sub.fetch(BATCH, timeout=1.0)
            except (NatsTimeout, asyncio.TimeoutError):
                await self._note_lag(sub, source)
                continue
            for msg in batch:
                verdict = await self._take(source, msg)
                if verdict == "early":
                    # One before it is on its way again (it went to a node that died): this
                    # and the rest come again after ACK_WAIT, in order, behind it.
                    break
                await msg.ack()  # after the commit
            await self._note_lag(sub, source)

    async def _take(self, source: str, msg: Any) -> str:
        """Apply one message of ``source``'s stream, in stream order (the store's verdict)."""
        seq = int(msg.metadata.sequence.stream)
        try:
            cross = wire.decode_cross(msg.data)
        except PigeonError as exc:
            log.warning("regions: malformed message %d from %s dropped: %s", seq, source, exc)
            return await self._skip(source, seq)
        if isinstance(cross, UnknownCross) or cross.origin != source:
            log.warning("regions: message %d of an unknown kind from %s skipped", seq, source)
            return await self._skip(source, seq)
        if isinstance(cross, CrossEnvelope):
            return await self._take_envelope(source, cross, seq)
        if not isinstance(cross, GroupCross) and not rules.homed_in(self.table,
                                                                    cross.sender.id, source):
            # forged: applied, it would make a person of another region (or of none) one
            # of the source's, renamed by whoever published it. A group's region ships what
            # members of every region did in it: the replica checks that the group is the
            # source's (store/sqlite_region_groups.py)
            log.warning("regions: message %d from %s names %d, not of %s: skipped", seq,
                        source, cross.sender.id, source)
            return await self._skip(source, seq)
        if isinstance(cross, CrossGroup) and await self._ours(cross.recipient_id):
            log.warning("regions: a replica of %s's group %d in this region's own range "
                        "refused", source, cross.recipient_id)
            return await self._skip(source, seq)
        try:
            if isinstance(cross, CrossMessage) and cross.blobs():
                # its file's bytes here first (Unavailable: the message waits, unacknowledged)
                await fetch_files(self.services, self.nc, source, cross.blobs())
            verdict, pushes = await self._apply(cross, seq)
        except Unavailable:
            raise  # the store is failing: unacknowledged, redelivered after ACK_WAIT
        except PigeonError as exc:  # refused for good (privacy, no such user)
            log.info("regions: message %d from %s to %d not delivered: %s", seq, source,
                     cross.recipient_id, exc.code)
            return await self._skip(source, seq)
        if verdict == "apply":
            follow_changes(self.services, pushes)
            self.services.bus.deliver(pushes)
            publish(self.services, pushes)
            self.applied += 1
        return verdict

    async def _take_envelope(self, source: str, cross: CrossEnvelope, seq: int) -> str:
        """An envelope into its device's inbox (the tie checked here again), pushed to it."""
        if not (rules.homed_in(self.table, cross.sender.id, source)
                and rules.homed_in(self.table, cross.sender_device, source)):
            log.warning("regions: envelope %d from %s names a sender not homed there: "
                        "dropped", seq, source)
            return await self._skip(source, seq)
        try:
            verdict, delivered = await self.services.store.apply_envelope(
                cross, seq, self.services.clock())
        except Unavailable:
            raise
        except PigeonError as exc:  # the sender may not reach that device (or it is gone)
            log.info("regions: envelope %d from %s not delivered: %s", seq, source, exc.code)
            return await self._skip(source, seq)
        for device_id, item in delivered:
            self.services.bus.publish(device_stream(device_id), item)
        self.applied += verdict == "apply"
        return verdict

    async def _ours(self, chat_id: int) -> bool:
        """Whether a new replica ``chat_id`` would take an id of this region's own range (a
        group made before ids were ranged): refused, for a chat of this range is this
        region's to write (a replica made before this rule is written from the stream)."""
        try:
            mine = rules.region_of_id(self.table, chat_id) == self.name
        except PigeonError:
            return False
        return mine and await self.services.store.group_home(chat_id) is None

    async def _apply(self, cross: wire.Cross, seq: int) -> tuple[str, list[Any]]:
        store, settings = self.services.store, self.services.settings
        media = self.services.media
        if media is None or not isinstance(cross, CrossMessage) or not cross.blobs():
            return await store.apply_cross(cross, seq, self.services.clock(),
                                           settings.default_who_can_message)
        # the collector decides under this lock whether a blob is used: not between the
        # check that the fetched blob is here and the file rows that use it
        async with media.blob_lock:
            for digest, _ in cross.blobs():
                if await media.blobs.path(digest) is None:
                    raise Unavailable("a fetched file went before its message was applied",
                                      code="STORAGE_FAILED")
            return await store.apply_cross(cross, seq, self.services.clock(),
                                           settings.default_who_can_message)

    async def _skip(self, source: str, seq: int) -> str:
        verdict = await self.services.store.skip_cross(source, seq)
        self.dropped += verdict == "apply"
        return verdict

    async def _note_lag(self, sub: Any, source: str) -> None:
        try:
            info = await sub.consumer_info()
            self.lag[source] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            self.reachable[source] = True
        except Exception:
            self.reachable[source] = False

    async def outbox_depth(self) -> dict[str, int]:
        return await self.services.store.outbox_depth()
