"""Pillow, set up once for the whole process.

Pillow's decompression-bomb guard is a process-wide global: past ``MAX_IMAGE_PIXELS`` it
warns, past twice that it raises. Photos (``media_max_pixels``, 50 MP by default) and
stickers (16.7 MP) each check their own, stricter bound from the image's header before a
single pixel is decoded; this guard is the backstop behind both, set on purpose (Pillow's
default is 89 MP) and in this one place, so that neither feature changes the other's. Its
warning is an error: an image that big is refused, never decoded.
"""

from __future__ import annotations

import warnings

from PIL import Image

PILLOW_MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = PILLOW_MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)


def allow_pixels(count: int) -> None:
    """Raise the backstop to ``count`` pixels if a setting takes larger images (called once,
    at start; never lowered, so a check elsewhere is never made stricter behind its back)."""
    current = Image.MAX_IMAGE_PIXELS or 0
    Image.MAX_IMAGE_PIXELS = max(current, count)
