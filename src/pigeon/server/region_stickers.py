"""Sticker sets across regions (issue 12, deliverable 6; docs/architecture.md, "Regions":
sticker sets). A set lives in its author's home region; a name not known here is asked of
every other region over request/reply (``<prefix>.region.<name>.sticker_set``), as a person
is looked up. The region that has it published answers with the set; this node then fetches
each sticker's image it lacks from there (region_files.py: by SHA-256, checked, bounded) and
keeps a copy of the set (store/sqlite_region_stickers.py), on which every sticker call runs
as on a set made here. A copy is refreshed from its region when it is viewed or installed,
at most once per ``region_sticker_refresh`` (a minute) per node; if its region does not
answer then, the copy serves. A name that no region has: STICKER_SET_NOT_FOUND; one that
some region did not answer for: REGION_UNAVAILABLE; either answer stands for the same
interval (a name is asked of the regions at most once per interval per node, whatever the
outcome), and the views of a name while it is being asked wait for that one ask. The
images of all copies are bounded by ``region_sticker_bytes``: QUOTA_EXCEEDED past it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import nats.errors

from pigeon.domain import stickers as rules
from pigeon.domain.regions import homed_in
from pigeon.protocol.errors import (
    Conflict, InvalidArgument, NotFound, PigeonError, Unavailable,
)
from pigeon.protocol.regions import (
    CrossSticker, CrossStickerSet, RemoteUser, SetAsk, SetFound, encode,
)
from pigeon.protocol.stickers import StickerSet, StickerSetInfo

from .region_asks import read_ask
from .region_files import fetch_files

if TYPE_CHECKING:
    from .regions import RegionLink
    from .services import Services

log = logging.getLogger("pigeon.regions")

ASK_TIMEOUT = 2.0       # seconds another region has to answer for a set (as for a lookup)
MAX_FRESH = 10_000      # copies whose last refresh a node remembers


def set_subject(prefix: str, region: str) -> str:
    return f"{prefix}.region.{region}.sticker_set"


async def seen_set(services: Services, viewer_id: int, name: str, *,
                   refresh: bool = True) -> StickerSet:
    """The set ``name`` as ``viewer_id`` may see it, from another region if it is not here
    (``refresh``: and a copy refreshed from its region, if that is due)."""
    if services.regions is None:
        return await services.store.get_sticker_set(viewer_id, name)
    return await services.regions.stickers.seen(viewer_id, name, refresh=refresh)


class StickerSets:
    def __init__(self, link: RegionLink) -> None:
        self.link = link
        # name -> when it was last asked of a region (any outcome; its error if it was
        # not "found" or "not found"), for at most MAX_FRESH names
        self._fresh: OrderedDict[str, tuple[float, PigeonError | None]] = OrderedDict()
        self._flights: dict[str, asyncio.Future[None]] = {}  # asks under way, by name

    # -- asked here ---------------------------------------------------------------------------
    async def answer(self, msg: Any) -> None:
        """A set published here by someone homed here, or ``set`` None; junk gets no answer."""
        if (ask := read_ask(msg, SetAsk, "sticker set request")) is None:
            return
        try:
            theirs = await self._ours(ask.name)
        except PigeonError:
            return  # the store failing: "not found" would be a lie; the asker times out
        await msg.respond(encode(SetFound(set=theirs)))

    async def _ours(self, name: str) -> CrossStickerSet | None:
        store = self.link.services.store
        try:
            whole = await store.get_sticker_set(None, name)  # published ones only
        except NotFound:
            return None
        if not homed_in(self.link.table, whole.info.author_id, self.link.name):
            return None  # a copy of another region's: not ours to hand out
        author = await store.get_users([whole.info.author_id])
        return CrossStickerSet(
            author=RemoteUser(id=whole.info.author_id, name=whole.info.author_name,
                              username=author[0].username if author else None),
            name=whole.info.name, title=whole.info.title, licence=whole.info.licence,
            stickers=[CrossSticker(index=s.index, emoji=s.emoji, file_id=s.file_id,
                                   width=s.width, height=s.height, animated=s.animated,
                                   size=s.size) for s in whole.stickers])

    # -- asked from here ----------------------------------------------------------------------
    async def seen(self, viewer_id: int, name: str, *, refresh: bool) -> StickerSet:
        store = self.link.services.store
        try:
            whole = await store.get_sticker_set(viewer_id, name)
        except NotFound as missing:
            flight = self._flights.get(name)
            if flight is None and not self._due(name):
                # asked within the interval: that answer stands (none had it, or a set of
                # that name is here unpublished, or a region did not answer)
                raise self._outcome(name) or missing from None
            try:
                await self._fetch_once(name, self.link.others)
            except Conflict as exc:
                if not _taken(exc):
                    raise
                raise missing from None  # a set of that name is here, unpublished
            return await store.get_sticker_set(viewer_id, name)
        region = self._region_of(whole.info)
        if refresh and region is not None and (name in self._flights or self._due(name)):
            try:
                await self._fetch_once(name, [region])
                whole = await store.get_sticker_set(viewer_id, name)
            except PigeonError as exc:  # its region away (or the set gone): the copy serves
                log.info("regions: sticker set %s not refreshed from %s: %s", name, region,
                         exc.code)
        return whole

    async def _fetch_once(self, name: str, regions: list[str]) -> None:
        """:meth:`_fetch`, once for all who ask for ``name`` meanwhile (a waiter cancelled
        leaves it running for the others); noted when it starts, whatever its outcome."""
        flight = self._flights.get(name)
        if flight is None:
            self._note(name)
            flight = asyncio.ensure_future(self._fetch(name, regions))
            self._flights[name] = flight
            flight.add_done_callback(lambda done: self._landed(name, done))
        await asyncio.shield(flight)

    def _landed(self, name: str, done: asyncio.Future[None]) -> None:
        self._flights.pop(name, None)
        failure = None if done.cancelled() else done.exception()
        if (isinstance(failure, PigeonError) and not isinstance(failure, NotFound)
                and not _taken(failure) and name in self._fresh):
            # "not answered" (or "no room") is kept for the interval too, as "not found" is
            self._fresh[name] = (self._fresh[name][0], failure)

    def _region_of(self, info: StickerSetInfo) -> str | None:
        """The region of a copy's author; None for a set made here."""
        for other in self.link.others:
            if homed_in(self.link.table, info.author_id, other):
                return other
        return None

    def _due(self, name: str) -> bool:
        last = self._fresh.get(name)
        every = self.link.services.settings.region_sticker_refresh
        return last is None or time.monotonic() - last[0] >= every

    def _outcome(self, name: str) -> PigeonError | None:
        """The last ask's error for ``name`` (REGION_UNAVAILABLE, QUOTA_EXCEEDED), if that
        is how it ended (None for "not found": the store's own says it)."""
        last = self._fresh.get(name)
        failure = None if last is None else last[1]
        return None if failure is None else type(failure)(
            failure.message, code=failure.code, retry_after=failure.retry_after)

    async def _fetch(self, name: str, regions: list[str]) -> None:
        """The set from the first of ``regions`` that has it, its images and all, kept here."""
        answers = await asyncio.gather(*(self._ask(region, name) for region in regions),
                                       return_exceptions=True)
        unanswered = False
        for region, answer in zip(regions, answers, strict=True):
            if isinstance(answer, Unavailable):
                unanswered = True
            elif isinstance(answer, BaseException):
                raise answer
            elif answer is not None:
                await self._keep(region, answer)
                return
        if unanswered:
            raise Unavailable(f"the region of sticker set {name!r} does not answer; try "
                              "again later", code="REGION_UNAVAILABLE", retry_after=5)
        raise rules.no_set(name)

    async def _ask(self, region: str, name: str) -> CrossStickerSet | None:
        found = (await self.link.ask(region, "sticker_set", SetAsk(name=name), SetFound,
                                     ASK_TIMEOUT)).set
        if found is not None and (found.name != name
                                  or not homed_in(self.link.table, found.author.id, region)):
            raise Unavailable(f"region {region} answered with another set",
                              code="REGION_UNAVAILABLE")
        return found

    async def _keep(self, region: str, theirs: CrossStickerSet) -> None:
        services = self.link.services
        media = services.media
        if media is None:
            raise Unavailable("this node keeps no files", code="STORAGE_FAILED")
        wanted = sorted({(s.file_id, s.size) for s in theirs.stickers})
        # over the bound of copies: refused before its images are fetched (and again in the
        # transaction that keeps it, which decides)
        limit = services.settings.region_sticker_bytes
        rules.copy_fits(theirs.name, [s.size for s in theirs.stickers],
                        await services.store.remote_sticker_bytes(theirs.name), limit)
        try:
            await fetch_files(services, self.link.nc, region, wanted)
        except (NotFound, InvalidArgument, nats.errors.Error) as exc:
            # its region's problem (an image gone there since it answered, or not what the
            # set says), not the caller's: the set is not to be had from there for now
            raise Unavailable(f"the images of sticker set {theirs.name!r} could not be "
                              f"fetched from region {region}", code="REGION_UNAVAILABLE",
                              retry_after=5) from exc
        # the collector decides under this lock whether a blob is used: not between the
        # check that the fetched images are here and the rows that use them
        async with media.blob_lock:
            for digest, _ in wanted:
                if await media.blobs.path(digest) is None:
                    raise Unavailable("a fetched sticker went before its set was kept",
                                      code="STORAGE_FAILED")
            await services.store.keep_remote_sticker_set(theirs, region, services.clock(),
                                                         limit)

    def _note(self, name: str) -> None:
        """``name`` is being asked of its region: not again before the refresh is due."""
        self._fresh[name] = (time.monotonic(), None)
        self._fresh.move_to_end(name)
        if len(self._fresh) > MAX_FRESH:
            self._fresh.popitem(last=False)


def _taken(exc: PigeonError) -> bool:
    """A set of that name is here (unpublished, by someone else): the name is not fetched."""
    return exc.code == "STICKER_SET_NAME_TAKEN"
