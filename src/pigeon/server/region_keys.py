"""Device keys and envelopes of people homed in another region (issue 12, deliverable 6;
docs/architecture.md, "Regions", "Secret chats across regions").

Ids say their region (users, chats and devices are allocated from ``i << 40`` by region
``i``), so ``keys.query``, ``keys.claim`` and ``envelopes.send`` split what they name by
region without a read. Keys of people homed elsewhere are asked of their region
(request/reply: ``<prefix>.region.<name>.keys`` and ``.claim``), which answers for its own
people only, by its own rule, for an asker the asking region homes; no answer in time is
REGION_UNAVAILABLE. Envelopes to devices homed elsewhere go through the outbox and the
stream (server/regions.py), so that they wait while that region is away and arrive once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any


from pigeon.domain import keys as rules
from pigeon.domain.regions import homed_in, region_of_id
from pigeon.domain.streams import device_stream
from pigeon.protocol import regions as wire
from pigeon.protocol.errors import InvalidArgument, PigeonError, Unavailable
from pigeon.protocol.keys import ClaimedKey, DeviceKeys, Envelope
from pigeon.protocol.region_keys import (
    MAX_REMOTE_DEVICES, ClaimAsk, ClaimFound, KeysAsk, KeysFound,
)
from pigeon.protocol.updates import KeysLow

from .region_asks import read_ask

if TYPE_CHECKING:
    from .regions import RegionLink
    from .services import Services

log = logging.getLogger("pigeon.regions")

KEYS_TIMEOUT = 2.0  # seconds another region has to answer for its people's keys


def keys_subject(prefix: str, region: str) -> str:
    return f"{prefix}.region.{region}.keys"


def claim_subject(prefix: str, region: str) -> str:
    return f"{prefix}.region.{region}.claim"


def split(link: RegionLink, ids: list[int]) -> tuple[list[int], dict[str, list[int]]]:
    """Ids of this region, and the others by their region (an id of no region is left out:
    nothing by that id exists anywhere)."""
    here: list[int] = []
    away: dict[str, list[int]] = defaultdict(list)
    for i in ids:
        try:
            region = region_of_id(link.table, i)
        except InvalidArgument:
            continue
        if region == link.name:
            here.append(i)
        else:
            away[region].append(i)
    return here, dict(away)


class KnownDevices:
    """The last answer of each region about each person's devices, per asker (at most
    :data:`KNOWN_DEVICES` pairs, the oldest forgotten first): while that region does not
    answer, its people's devices are what it last said, so that a secret message to them is
    encrypted, acknowledged and waits in the outbox. Their devices cannot change meanwhile
    unless only the link is cut: then a device added since misses what is sent meanwhile (as
    a device that joins later does) and one removed since is not delivered to."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], list[DeviceKeys]] = {}

    def keep(self, asker_id: int, user_ids: list[int], devices: list[DeviceKeys]) -> None:
        for user_id in user_ids:
            self._known.pop((asker_id, user_id), None)
            self._known[asker_id, user_id] = [d for d in devices if d.user_id == user_id]
        while len(self._known) > KNOWN_DEVICES:
            del self._known[next(iter(self._known))]

    def recall(self, asker_id: int, user_ids: list[int]) -> list[DeviceKeys] | None:
        """What was last said of all of them, or None if of one it was never said."""
        out: list[DeviceKeys] = []
        for user_id in user_ids:
            known = self._known.get((asker_id, user_id))
            if known is None:
                return None
            out += known
        return out


#: (asker, person) pairs whose devices a node remembers (a few hundred bytes each)
KNOWN_DEVICES = 10_000


async def query(link: RegionLink, asker_id: int, user_ids: list[int]) -> list[DeviceKeys]:
    """Devices of people homed elsewhere whom the asker may see here (a lookup made here is
    known only here), asked of their regions, each by its own rule; a region that does not
    answer: what it said last (:class:`KnownDevices`), else REGION_UNAVAILABLE."""
    seen = await link.services.store.visible_users(asker_id, user_ids)
    _, away = split(link, [user.id for user in seen])
    out: list[DeviceKeys] = []
    for region, ids in sorted(away.items()):
        try:
            found = await link.ask(region, "keys", KeysAsk(
                origin=link.name, asker_id=asker_id, user_ids=ids), KeysFound, KEYS_TIMEOUT)
        except Unavailable:
            known = link.known_devices.recall(asker_id, ids)
            if known is None:
                raise
            out += known
            continue
        # a region answers for its own people's devices only
        devices = [d for d in found.devices
                   if d.user_id in ids and homed_in(link.table, d.device_id, region)]
        link.known_devices.keep(asker_id, ids, devices)
        out += devices
    return out


async def claim(link: RegionLink, asker_id: int, asker_device: int,
                device_ids: list[int]) -> list[ClaimedKey]:
    _, away = split(link, device_ids)
    out: list[ClaimedKey] = []
    for region, ids in sorted(away.items()):
        found = await link.ask(region, "claim", ClaimAsk(
            origin=link.name, asker_id=asker_id, asker_device=asker_device, device_ids=ids),
            ClaimFound, KEYS_TIMEOUT)
        out += [k for k in found.keys
                if k.device_id in ids and homed_in(link.table, k.user_id, region)]
    return out


async def settle(link: RegionLink, away: dict[str, list[int]]
                 ) -> tuple[list[int], dict[str, list[int]]]:
    """Of device ids :func:`split` put elsewhere, those of this region's own sessions back
    here: a region of index above 0 keeps the ids its sessions had before device ids were
    ranged, which fall in region 0's range (one read, only when something is elsewhere)."""
    ids = [i for ids in away.values() for i in ids]
    here = await link.services.store.devices_here(ids) if ids else set()
    if not here:
        return [], away
    return sorted(here), {region: kept for region, ids in away.items()
                          if (kept := [i for i in ids if i not in here])}


def route(link: RegionLink, envelopes: list[Envelope]
          ) -> tuple[list[Envelope], list[tuple[str, Envelope]]]:
    """Envelopes to devices of this region, and the others with their device's region;
    DEVICE_NOT_FOUND for an id of no region."""
    here: list[Envelope] = []
    away: list[tuple[str, Envelope]] = []
    for envelope in envelopes:
        try:
            region = region_of_id(link.table, envelope.device_id)
        except InvalidArgument:
            raise rules.not_reachable(envelope.device_id) from None
        if region == link.name:
            here.append(envelope)
        else:
            away.append((region, envelope))
    return here, away


def _vouched(link: RegionLink, origin: str, asker_id: int) -> bool:
    """A region speaks only for its own people (any client of the supercluster can publish:
    an asker not homed in the region that says it asks is refused, and logged)."""
    if origin in link.others and homed_in(link.table, asker_id, origin):
        return True
    log.warning("regions: keys question from %s for user %d refused: not homed there",
                origin, asker_id)
    return False


async def answer_keys(services: Services, link: RegionLink, msg: Any) -> None:
    if (ask := read_ask(msg, KeysAsk, "keys question")) is None:
        return
    devices: list[DeviceKeys] = []
    if _vouched(link, ask.origin, ask.asker_id):
        try:
            devices = await services.store.keys_for(ask.asker_id, list(ask.user_ids),
                                                    MAX_REMOTE_DEVICES)
        except PigeonError:
            return  # the store failing: "none" would be a lie; the asker times out
    await msg.respond(wire.encode(KeysFound(devices=devices)))


async def answer_claim(services: Services, link: RegionLink, msg: Any) -> None:
    if (ask := read_ask(msg, ClaimAsk, "claim")) is None:
        return
    claimed: list[tuple[ClaimedKey, int]] = []
    if _vouched(link, ask.origin, ask.asker_id) and homed_in(link.table, ask.asker_device,
                                                             ask.origin):
        try:
            claimed = await services.store.claim_keys_for(ask.asker_id, ask.asker_device,
                                                          list(ask.device_ids))
        except PigeonError:
            return
    for key, left in claimed:
        if rules.runs_low(left):
            services.bus.publish(device_stream(key.device_id), KeysLow(pts=0, one_time_keys=left))
    await msg.respond(wire.encode(ClaimFound(keys=[key for key, _ in claimed])))
