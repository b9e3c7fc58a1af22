"""What an upload becomes (media/ingest.py, images.py, sniff.py): types from content only,
photos decoded fully, bombs and absurd sizes refused, EXIF GPS removed unless kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pigeon.media.ingest import ingest
from pigeon.media.sniff import HEAD_BYTES, sniff
from pigeon.protocol.errors import InvalidArgument

# As in the server (media/images.py): Pillow's bomb warning is an error, not a log line.
pytestmark = pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB",
                **options: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 0).save(out, fmt, **options)
    return out.getvalue()


def gps_jpeg() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8825)[1] = "N"
    return image_bytes("JPEG", exif=exif.tobytes())


def refused(tmp_path: Path, data: bytes, wanted: str = "auto", name: str = "f") -> str:
    with pytest.raises(InvalidArgument) as caught:
        ingest(write(tmp_path, name, data), wanted, False, tmp_path / "thumb")
    assert not (tmp_path / "thumb").exists() or wanted != "document"
    return caught.value.code


@pytest.mark.parametrize("fmt,mime", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                      ("WEBP", "image/webp"), ("GIF", "image/gif")])
def test_photos_are_typed_by_content_and_thumbnailed(tmp_path, fmt, mime):
    # named .txt on purpose: the name says nothing
    got = ingest(write(tmp_path, "x.txt", image_bytes(fmt, (1000, 500))), "auto", False,
                 tmp_path / "thumb")
    assert (got.kind, got.mime, got.width, got.height, got.thumb) == (
        "photo", mime, 1000, 500, True)
    with Image.open(tmp_path / "thumb") as thumb:
        assert thumb.format == "JPEG" and thumb.size == (320, 160)


def test_gps_is_stripped_unless_kept(tmp_path):
    path = write(tmp_path, "a.jpg", gps_jpeg())
    ingest(path, "photo", False, tmp_path / "t1")
    with Image.open(path) as img:
        assert 0x8825 not in img.getexif()
    kept = write(tmp_path, "b.jpg", gps_jpeg())
    ingest(kept, "photo", True, tmp_path / "t2")
    assert kept.read_bytes() == gps_jpeg()


def test_a_corrupt_or_truncated_image_is_refused(tmp_path):
    whole = image_bytes("PNG", (300, 300), mode="RGB")
    assert refused(tmp_path, whole[: len(whole) // 2]) == "IMAGE_INVALID"
    jpeg = bytearray(image_bytes("JPEG", (300, 300)))
    jpeg[200:260] = b"\x00" * 60
    assert refused(tmp_path, bytes(jpeg[:400])) in ("IMAGE_INVALID",)


def test_a_decompression_bomb_and_huge_dimensions_are_refused(tmp_path):
    bomb = image_bytes("PNG", (9000, 9000), mode="1")  # 81 MP of nothing, a few KB
    assert len(bomb) < 100_000
    assert refused(tmp_path, bomb) == "IMAGE_TOO_LARGE"
    strip = image_bytes("PNG", (30_000, 1), mode="1")
    assert refused(tmp_path, strip) == "IMAGE_TOO_LARGE"


def test_a_file_claiming_to_be_a_photo_must_be_one(tmp_path):
    assert refused(tmp_path, b"%PDF-1.4 not a photo", "photo", "x.jpg") == "MEDIA_TYPE_MISMATCH"
    assert refused(tmp_path, b"BM" + b"\x00" * 100, "photo") == "MEDIA_TYPE_MISMATCH"
    # as a document, anything goes, typed by its content
    got = ingest(write(tmp_path, "x.jpg", b"%PDF-1.4 ..."), "document", False, tmp_path / "t")
    assert (got.kind, got.mime) == ("document", "application/pdf")
    got = ingest(write(tmp_path, "y", image_bytes("PNG")), "document", False, tmp_path / "t")
    assert (got.kind, got.mime, got.thumb) == ("document", "image/png", False)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=HEAD_BYTES))
def test_sniffing_never_fails(head):
    mime = sniff(head)
    assert mime.count("/") == 1


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.sampled_from([b"\x89PNG\r\n\x1a\n",
                                                              b"\xff\xd8\xff", b"GIF89a"]))
def test_garbage_behind_image_magic_is_refused_with_a_typed_error(tmp_path_factory, tail, magic):
    tmp = tmp_path_factory.mktemp("fuzz")
    try:
        got = ingest(write(tmp, "f", magic + tail), "auto", False, tmp / "thumb")
    except InvalidArgument as exc:
        assert exc.code in ("IMAGE_INVALID", "IMAGE_TOO_LARGE", "MEDIA_TYPE_MISMATCH")
    else:
        assert got.kind == "photo"
