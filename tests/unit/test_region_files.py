"""Fetching a file's bytes from another region (server/region_files.py), against a fake
NATS connection: stored only when whole and matching its SHA-256, in bounded chunks; a
region that does not answer is "try later", one that says no or lies is "never"."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from nats.errors import TimeoutError as NatsTimeout

from pigeon.media.blobs import DiskBlobStore
from pigeon.protocol.errors import InvalidArgument, NotFound, Unavailable
from pigeon.protocol.regions import BLOB_CHUNK, BlobAsk, BlobPart, encode
from pigeon.server.region_files import fetch_files


class FakeRegion:
    """Answers blob requests from ``blobs`` (digest -> bytes); ``silent``: never answers."""

    def __init__(self, blobs: dict[str, bytes], silent: bool = False) -> None:
        self.blobs = blobs
        self.silent = silent
        self.asked: list[BlobAsk] = []

    async def request(self, subject: str, data: bytes, timeout: float) -> Any:
        assert subject == "pigeon.region.a.blob"
        ask = msgspec.msgpack.decode(data, type=BlobAsk)
        self.asked.append(ask)
        if self.silent:
            raise NatsTimeout
        blob = self.blobs.get(ask.digest)
        part = (BlobPart(found=False) if blob is None else
                BlobPart(found=True, data=blob[ask.offset:ask.offset + ask.length]))
        return SimpleNamespace(data=encode(part))


def services(tmp_path: Path, limit: int = 1 << 30) -> Any:
    blobs = DiskBlobStore(tmp_path / "media")
    return SimpleNamespace(media=SimpleNamespace(blobs=blobs), settings=SimpleNamespace(
        media_max_file_bytes=limit, bus_prefix="pigeon"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(s: Any, nc: FakeRegion, wanted: list[tuple[str, int]]) -> None:
    asyncio.run(fetch_files(s, nc, "a", wanted))


def test_a_blob_is_fetched_in_bounded_chunks_checked_and_stored(tmp_path: Path) -> None:
    data = bytes(range(256)) * 2100  # a little over two chunks
    s, nc = services(tmp_path), FakeRegion({sha(data): data})
    fetch(s, nc, [(sha(data), len(data))])
    stored = asyncio.run(s.media.blobs.path(sha(data)))
    assert stored is not None and stored.read_bytes() == data
    assert [a.offset for a in nc.asked] == [0, BLOB_CHUNK, 2 * BLOB_CHUNK]
    assert all(a.length <= BLOB_CHUNK for a in nc.asked)
    fetch(s, nc, [(sha(data), len(data))])  # here already: not asked again
    assert len(nc.asked) == 3
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    empty = b""
    fetch(s, FakeRegion({}), [(sha(empty), 0)])  # nothing to ask for
    assert asyncio.run(s.media.blobs.path(sha(empty))) is not None


@pytest.mark.parametrize("case", ["lie", "short", "long", "gone", "silent", "big", "junk"])
def test_what_is_not_the_blob_is_never_stored(tmp_path: Path, case: str) -> None:
    data = b"pigeon" * 1000
    digest = sha(data)
    s = services(tmp_path, limit=len(data) if case != "big" else len(data) - 1)
    nc = FakeRegion({digest: data}, silent=case == "silent")
    wanted = {"lie": [(digest, len(data))], "short": [(digest, len(data) + 10)],
              "long": [(digest, len(data) - 10)], "gone": [(sha(b"other"), 5)],
              "silent": [(digest, len(data))], "big": [(digest, len(data))],
              "junk": [("../../etc/passwd", 5)]}[case]
    if case == "lie":
        nc.blobs[digest] = b"x" * len(data)
    expected: type[Exception] = {"gone": NotFound, "silent": Unavailable}.get(
        case, InvalidArgument)
    with pytest.raises(expected):
        fetch(s, nc, wanted)
    assert asyncio.run(s.media.blobs.path(digest)) is None
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    if case in ("big", "junk"):
        assert nc.asked == []  # refused before asking
