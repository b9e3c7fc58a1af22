"""Sticker images: decoded fully and validated with Pillow, normalised to WebP (issue 10).

A sticker is a WebP whose longer side is exactly 512 px and whose other side is at most 512,
with its transparency kept, of at most 512 KB: a lower quality is tried until it fits. An
animated WebP, GIF or APNG becomes an animated WebP sticker of at most 3 seconds.

What is refused, before any pixel is decoded where the header can tell (IMAGE_TOO_LARGE,
IMAGE_INVALID): a source over :data:`MAX_SOURCE_BYTES`; a side over :data:`MAX_SOURCE_SIDE`
or more than :data:`MAX_SOURCE_PIXELS` pixels (a decompression bomb is a small file that
claims a huge image); anything but PNG, WebP, JPEG or GIF by its content (what the client
says the type is, is never asked); a file that does not decode to its end (truncated,
corrupt); an animation over 3 s or :data:`MAX_FRAMES` frames.

The work is CPU-bound and blocking: :class:`StickerWorkshop` runs it in a thread, at most
``jobs`` at once, and refuses (OVERLOADED, retryable) when too many wait.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import NamedTuple

from PIL import Image, ImageSequence, UnidentifiedImageError

from pigeon.protocol.errors import InvalidArgument, Unavailable

from . import pillow  # noqa: F401  (the process-wide bomb guard, set before any image opens)

#: the side a sticker's longer side is scaled to, and its largest file
SIDE = 512
MAX_STICKER_BYTES = 512 * 1024
#: what a source image may be, at most: its file, each side, its pixels (16.7 MP: 64 MiB
#: decoded as RGBA), an animation's frames and length
MAX_SOURCE_BYTES = 5 * 1024 * 1024
MAX_SOURCE_SIDE = 8192
MAX_SOURCE_PIXELS = 4096 * 4096
MAX_FRAMES = 120
MAX_ANIMATION_MS = 3000
#: the formats a source may be, by content; Pillow tries no other decoder on it
FORMATS = ("PNG", "WEBP", "JPEG", "GIF")
#: WebP qualities tried in turn until the sticker fits in MAX_STICKER_BYTES
QUALITIES = (90, 80, 70, 55, 40, 25, 10)

# Pillow's own bomb guard is process-wide and set in one place (pillow.py, the backstop);
# stickers check the stricter MAX_SOURCE_PIXELS from the header first.


class Normalised(NamedTuple):
    data: bytes  # the WebP file
    width: int
    height: int
    animated: bool
    frames: int
    duration_ms: int
    source_format: str


def _invalid(why: str) -> InvalidArgument:
    return InvalidArgument(f"not a usable sticker image: {why}", code="IMAGE_INVALID")


def _too_large(why: str) -> InvalidArgument:
    return InvalidArgument(f"the image is too large: {why}", code="IMAGE_TOO_LARGE")


def target_size(width: int, height: int) -> tuple[int, int]:
    """The longer side made exactly :data:`SIDE`, the other scaled with it (at least 1)."""
    if width >= height:
        return SIDE, max(1, min(SIDE, round(height * SIDE / width)))
    return max(1, min(SIDE, round(width * SIDE / height))), SIDE


def normalise(data: bytes) -> Normalised:
    """The sticker made of ``data``; InvalidArgument (IMAGE_INVALID, IMAGE_TOO_LARGE) if it
    cannot be one. Blocking: call it in a thread."""
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_large(f"{len(data)} bytes, at most {MAX_SOURCE_BYTES}")
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            return _normalise(img)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise _too_large(str(exc)) from None
        raise _invalid("not a PNG, WebP, JPEG or GIF image") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        # Pillow reports a truncated or corrupt file as any of these while it decodes.
        raise _invalid(f"it does not decode ({exc.__class__.__name__}: {exc})") from None


def _normalise(img: Image.Image) -> Normalised:
    width, height = img.size
    if width < 1 or height < 1:
        raise _invalid("it has no pixels")
    if width > MAX_SOURCE_SIDE or height > MAX_SOURCE_SIDE:
        raise _too_large(f"{width}x{height} px, each side at most {MAX_SOURCE_SIDE}")
    if width * height > MAX_SOURCE_PIXELS:
        raise _too_large(f"{width}x{height} px, at most {MAX_SOURCE_PIXELS} pixels")
    source_format = img.format or ""
    frames = getattr(img, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise _invalid(f"{frames} frames, at most {MAX_FRAMES}")
    size = target_size(width, height)
    if frames == 1:
        img.load()  # decodes every pixel: a truncated or corrupt file fails here
        still = _rgba(img).resize(size, Image.Resampling.LANCZOS)
        data = _fit(lambda q: _webp(still, q))
        return Normalised(data, *size, False, 1, 0, source_format)
    pictures: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(img):
        frame.load()
        # A frame without a duration shows for 100 ms, as browsers show it; none shorter
        # than 10 ms, so that a thousand 0 ms frames cannot pass for a short animation.
        durations.append(max(10, int(frame.info.get("duration", 100) or 100)))
        total = sum(durations)
        if total > MAX_ANIMATION_MS:  # before resizing the rest: refused work is cheap
            raise _invalid(f"an animation of over {total / 1000:.1f} s; a sticker lasts at "
                           f"most {MAX_ANIMATION_MS / 1000:.0f} s")
        pictures.append(_rgba(frame).resize(size, Image.Resampling.LANCZOS))
    data = _fit(lambda q: _animated_webp(pictures, durations, q))
    return Normalised(data, *size, True, len(pictures), sum(durations), source_format)


def _rgba(img: Image.Image) -> Image.Image:
    """RGBA, so that transparency (a palette's, a PNG's tRNS, an alpha channel) is kept."""
    if img.mode == "RGBA":
        return img
    if img.mode == "P" and "transparency" not in img.info:
        return img.convert("RGB").convert("RGBA")
    return img.convert("RGBA")


def _webp(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "WEBP", quality=quality, method=4, exact=False)
    return out.getvalue()


def _animated_webp(frames: list[Image.Image], durations: list[int], quality: int) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
                   loop=0, quality=quality, method=4)
    return out.getvalue()


def _fit(encode: Callable[[int], bytes]) -> bytes:
    for quality in QUALITIES:
        data = encode(quality)
        if len(data) <= MAX_STICKER_BYTES:
            return data
    raise _too_large(f"even at the lowest quality the sticker is over {MAX_STICKER_BYTES} "
                     "bytes")


class StickerWorkshop:
    """Runs :func:`normalise` off the event loop: ``jobs`` at once, and at most ``waiting``
    more queued; past that, OVERLOADED (retryable), so that a burst of uploads cannot queue
    up unbounded memory."""

    def __init__(self, jobs: int = 2, waiting: int = 16) -> None:
        self._slots = asyncio.Semaphore(jobs)
        self._waiting = waiting
        self._queued = 0

    async def normalise(self, data: bytes) -> Normalised:
        if self._queued >= self._waiting:
            raise Unavailable("too many sticker images are being processed; try again",
                              code="OVERLOADED", retry_after=1.0)
        self._queued += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(normalise, data)
        finally:
            self._queued -= 1
