"""The content-addressed blob store: same bytes kept once, a digest names them, bad names
are refused before touching the disk."""

import hashlib
from pathlib import Path

import pytest

from pigeon.media.blobs import DiskBlobStore


async def test_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = DiskBlobStore(tmp_path / "media")
    first, second = store.scratch() / "a", store.scratch() / "b"
    first.write_bytes(b"hello" * 1000)
    second.write_bytes(b"hello" * 1000)
    digest, size = await store.put(first)
    assert (digest, size) == (hashlib.sha256(b"hello" * 1000).hexdigest(), 5000)
    assert await store.put(second) == (digest, size)
    assert not first.exists() and not second.exists()
    where = await store.path(digest)
    assert where is not None and where.read_bytes() == b"hello" * 1000
    blobs = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert blobs == [where]
    await store.delete(digest)
    assert await store.path(digest) is None


@pytest.mark.parametrize("name", ["../../etc/passwd", "AB" * 32, "a" * 63, ""])
async def test_a_name_that_is_not_a_digest_is_refused(tmp_path: Path, name: str) -> None:
    store = DiskBlobStore(tmp_path / "media")
    with pytest.raises(ValueError):
        await store.path(name)
