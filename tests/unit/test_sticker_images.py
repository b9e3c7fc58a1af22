"""Sticker images (pigeon.media.stickers): what Pillow makes of good images, and the typed
error for every bad one: corrupt, truncated, a decompression bomb, huge dimensions, a type
that is not what it claims, too long an animation, a source or a result over its bound."""

from __future__ import annotations

import asyncio
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sticker_images import animation, jpeg, png, png_claiming, save

from pigeon.media import stickers as images
from pigeon.media.stickers import normalise
from pigeon.protocol.errors import InvalidArgument, Unavailable


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def refused(data: bytes, code: str = "IMAGE_INVALID") -> str:
    with pytest.raises(InvalidArgument) as exc:
        normalise(data)
    assert exc.value.code == code
    return exc.value.message


@pytest.mark.parametrize("size, expected", [
    ((300, 200), (512, 341)), ((200, 640), (160, 512)), ((40, 40), (512, 512)),
    ((4000, 10), (512, 1)), ((512, 512), (512, 512)),
])
def test_the_longer_side_becomes_exactly_512_and_the_other_scales_with_it(size, expected):
    made = normalise(png(*size))
    assert (made.width, made.height) == expected
    img = opened(made.data)
    assert img.format == "WEBP" and img.size == expected
    assert len(made.data) <= images.MAX_STICKER_BYTES and not made.animated


def test_transparency_is_kept_and_a_jpeg_becomes_an_opaque_webp():
    made = opened(normalise(png(300, 300)).data).convert("RGBA")
    assert made.getpixel((2, 2))[3] == 0 and made.getpixel((256, 256))[3] == 255
    photo = normalise(jpeg(640, 480))
    assert photo.source_format == "JPEG" and (photo.width, photo.height) == (512, 384)
    assert opened(photo.data).convert("RGBA").getpixel((2, 2))[3] == 255


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])  # PNG with frames is APNG
def test_an_animation_becomes_an_animated_webp_sticker(fmt):
    made = normalise(animation(fmt, frames=3, duration=100))
    assert made.animated and made.frames == 3 and made.duration_ms == 300
    img = Image.open(io.BytesIO(made.data))
    assert img.format == "WEBP" and getattr(img, "n_frames", 1) == 3 and img.size == (512, 512)


def test_an_animation_over_three_seconds_or_too_many_frames_is_refused():
    assert "3.1 s" in refused(animation("GIF", frames=31, duration=100, side=16))
    assert normalise(animation("GIF", frames=3, duration=1000, side=16)).duration_ms == 3000
    assert "frames" in refused(animation("GIF", frames=images.MAX_FRAMES + 1, duration=10,
                                         side=8))


def test_corrupt_and_truncated_files_are_refused():
    good = png(200, 200, transparent=False)
    refused(b"")
    refused(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    refused(good[: len(good) // 2])
    refused(good[:40] + bytes(b ^ 0xFF for b in good[40:80]) + good[80:])
    refused(jpeg()[:600])


def test_a_file_is_what_its_content_says_whatever_it_claims():
    # A BMP, a PDF, an SVG named .png are none of the four formats: refused by content.
    bmp = save(Image.new("RGB", (64, 64)), "BMP")
    assert "PNG, WebP, JPEG or GIF" in refused(bmp)
    refused(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    refused(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    # A JPEG claimed to be a PNG is a JPEG: nobody asks the claim.
    assert normalise(jpeg()).source_format == "JPEG"


def test_a_decompression_bomb_and_huge_dimensions_are_refused_before_decoding():
    bomb = png_claiming(50_000, 50_000)  # 2.5 gigapixels in a few hundred bytes
    assert len(bomb) < 1000
    refused(bomb, "IMAGE_TOO_LARGE")
    refused(png_claiming(images.MAX_SOURCE_SIDE + 1, 10), "IMAGE_TOO_LARGE")
    refused(png_claiming(10, images.MAX_SOURCE_SIDE + 1), "IMAGE_TOO_LARGE")
    refused(png_claiming(4097, 4096), "IMAGE_TOO_LARGE")  # over MAX_SOURCE_PIXELS
    # At the bounds the header passes; this one's pixels are not there: corrupt, not large.
    refused(png_claiming(images.MAX_SOURCE_SIDE, 10))
    refused(png_claiming(4096, 4096))


def test_pillows_own_bomb_guard_is_set_deliberately_and_reported_as_too_large(monkeypatch):
    from pigeon.media.pillow import PILLOW_MAX_PIXELS

    assert Image.MAX_IMAGE_PIXELS == PILLOW_MAX_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    refused(png(30, 30), "IMAGE_TOO_LARGE")  # 900 px > 2 x 100: DecompressionBombError


def test_a_source_over_its_byte_bound_is_refused_unread():
    refused(b"\0" * (images.MAX_SOURCE_BYTES + 1), "IMAGE_TOO_LARGE")


def test_quality_drops_until_the_sticker_fits_or_it_is_refused(monkeypatch):
    monkeypatch.setattr(images, "QUALITIES", (90, 30))
    noisy = Image.effect_noise((512, 512), 120).convert("RGB")
    source = save(noisy, "PNG")
    first = normalise(source)
    monkeypatch.setattr(images, "MAX_STICKER_BYTES", len(first.data) - 1)
    smaller = normalise(source)  # a lower quality fits
    assert len(smaller.data) < len(first.data)
    monkeypatch.setattr(images, "MAX_STICKER_BYTES", 100)
    refused(source, "IMAGE_TOO_LARGE")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048) | st.builds(lambda cut, junk: png(64, 48)[:cut] + junk,
                                            st.integers(0, 400), st.binary(max_size=64)))
def test_any_bytes_make_a_sticker_or_a_typed_error_never_anything_else(data):
    try:
        made = normalise(data)
    except InvalidArgument as exc:
        assert exc.code in ("IMAGE_INVALID", "IMAGE_TOO_LARGE")
    else:
        assert max(made.width, made.height) == 512


async def test_the_workshop_runs_jobs_in_threads_and_refuses_past_its_queue():
    shop = images.StickerWorkshop(jobs=1, waiting=1)
    first = asyncio.create_task(shop.normalise(png()))
    await asyncio.sleep(0)  # the first one is queued (running in its thread)
    with pytest.raises(Unavailable) as busy:
        await shop.normalise(png())
    assert busy.value.code == "OVERLOADED" and busy.value.retry_after
    assert (await first).width == 512
    assert (await shop.normalise(png())).width == 512  # room again
