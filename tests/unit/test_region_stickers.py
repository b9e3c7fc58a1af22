"""Asking other regions for a sticker set (server/region_stickers.py), against a fake NATS
connection and a real SQLite store: a name is asked at most once per refresh interval per
node whatever the answer (none, "nobody has it", an error), the views meanwhile waiting for
that one ask; another region's trouble reaches the caller as REGION_UNAVAILABLE."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import nats.errors
import pytest

from pigeon.domain.regions import parse_table
from pigeon.media.blobs import DiskBlobStore
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.regions import (
    BlobPart, CrossSticker, CrossStickerSet, RemoteUser, SetAsk, SetFound, encode,
)
from pigeon.server.region_stickers import StickerSets
from pigeon.server.regions import RegionLink
from pigeon.store import SqliteStore

ADA = RemoteUser(id=(0 << 40) + 21, name="Ada")  # homed in a (region 0)
IMAGE = b"not really a webp" * 10


class FakeRegions:
    """Region a over request/reply: ``how`` it answers a set ask ("silent", "closed",
    "none", "set"); blob asks for the set's image are answered "gone". ``gate``: asks wait
    for it."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.asks = 0
        self.blob_asks = 0
        self.is_connected = True
        self.gate: asyncio.Event | None = None

    async def request(self, subject: str, data: bytes, timeout: float) -> Any:
        if subject.endswith(".blob"):
            self.blob_asks += 1
            return SimpleNamespace(data=encode(BlobPart(found=False)))
        assert subject == "pigeon.region.a.sticker_set"
        msgspec.msgpack.decode(data, type=SetAsk)
        self.asks += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.how == "silent":
            raise nats.errors.TimeoutError
        if self.how == "closed":
            raise nats.errors.ConnectionClosedError
        owls = CrossStickerSet(author=ADA, name="owls", title="Owls", stickers=[CrossSticker(
            index=1, emoji=["🦉"], file_id=hashlib.sha256(IMAGE).hexdigest(), width=512,
            height=512, size=len(IMAGE))])
        return SimpleNamespace(data=encode(SetFound(set=owls if self.how == "set" else None)))


def sets(store: SqliteStore, tmp_path: Path, nc: FakeRegions,
         bound: int = 1 << 30) -> StickerSets:
    table = parse_table({"regions": [
        {"name": name, "index": i, "endpoints": ["ws://127.0.0.1:1/v1/ws"],
         "calling_codes": [49 + i], "default": i == 0} for i, name in enumerate("ab")]})
    services = SimpleNamespace(
        store=store, clock=lambda: 1.0e9,
        settings=SimpleNamespace(region_sticker_refresh=60.0, bus_prefix="pigeon", bus="",
                                 media_max_file_bytes=1 << 20, region_sticker_bytes=bound),
        media=SimpleNamespace(blobs=DiskBlobStore(tmp_path / "media"), blob_lock=asyncio.Lock()))
    link = RegionLink(services, table, "b")  # type: ignore[arg-type]
    link.nc = nc  # never started: asks go to the fake
    return StickerSets(link)


async def codes_of(views: list[Any]) -> list[str]:
    outcomes = await asyncio.gather(*views, return_exceptions=True)
    return [o.code if isinstance(o, PigeonError) else repr(o) for o in outcomes]


@pytest.mark.parametrize(("how", "code"), [
    ("silent", "REGION_UNAVAILABLE"), ("closed", "REGION_UNAVAILABLE"),
    ("none", "STICKER_SET_NOT_FOUND"), ("set", "REGION_UNAVAILABLE")])
async def test_a_name_is_asked_once_per_interval_whatever_the_answer(
        store: SqliteStore, tmp_path: Path, how: str, code: str) -> None:
    # "set": a has it, but its image is gone there: a's problem, not the caller's
    nc = FakeRegions(how)
    stickers = sets(store, tmp_path, nc)
    for _ in range(5):
        assert await codes_of([stickers.seen(7, "owls", refresh=True)]) == [code]
    assert nc.asks == 1
    # another name is asked on its own
    assert await codes_of([stickers.seen(7, "larks", refresh=True)]) == [code]
    assert nc.asks == 2


async def test_views_of_a_name_being_asked_wait_for_that_one_ask(
        store: SqliteStore, tmp_path: Path) -> None:
    nc = FakeRegions("none")
    nc.gate = asyncio.Event()
    stickers = sets(store, tmp_path, nc)
    views = [asyncio.ensure_future(stickers.seen(7, "owls", refresh=True)) for _ in range(5)]
    while nc.asks == 0:
        await asyncio.sleep(0)
    views[0].cancel()  # one viewer gone: the ask goes on for the others
    await asyncio.sleep(0)
    nc.gate.set()
    assert await codes_of(views[1:]) == ["STICKER_SET_NOT_FOUND"] * 4
    assert views[0].cancelled()
    assert nc.asks == 1


async def test_a_copy_past_the_bound_is_refused_before_its_images_are_fetched(
        store: SqliteStore, tmp_path: Path) -> None:
    nc = FakeRegions("set")
    stickers = sets(store, tmp_path, nc, bound=len(IMAGE) - 1)
    for _ in range(3):
        assert await codes_of([stickers.seen(7, "owls", refresh=True)]) == ["QUOTA_EXCEEDED"]
    assert (nc.asks, nc.blob_asks) == (1, 0)
