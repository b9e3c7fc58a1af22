"""Photos with Pillow: decode fully (a corrupt image is refused, not stored), refuse
decompression bombs and absurd dimensions, strip EXIF location, make a thumbnail.

Everything here is synchronous and CPU-bound: callers run it in a thread
(``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from pigeon.protocol.errors import InvalidArgument

from .pillow import PILLOW_MAX_PIXELS
from .sniff import PHOTO_FORMATS

#: photos larger than this are refused, checked from the header before decoding a pixel
#: (the setting media_max_pixels); Pillow's own guard is the backstop (pillow.py)
DEFAULT_MAX_PIXELS = PILLOW_MAX_PIXELS
#: a side longer than this is refused whatever the pixel count (a 100000 x 1 strip)
MAX_SIDE = 20_000
THUMB_SIDE = 320
_GPS_IFD = 0x8825  # ExifTags.IFD.GPSInfo


class Photo(NamedTuple):
    mime: str
    width: int
    height: int
    stripped: bool  # the file was rewritten without its EXIF location


def _too_large(width: int, height: int, max_pixels: int) -> InvalidArgument:
    return InvalidArgument(f"this image is {width}x{height}; at most {max_pixels} pixels and "
                           f"{MAX_SIDE} per side", code="IMAGE_TOO_LARGE")


def inspect_photo(path: Path, keep_location: bool, thumb: Path,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Check that ``path`` is a whole, sane image; unless ``keep_location``, rewrite it
    without EXIF GPS; write a JPEG thumbnail to ``thumb``. IMAGE_INVALID for what does not
    decode, IMAGE_TOO_LARGE for bombs, MEDIA_TYPE_MISMATCH for what is not an image."""
    try:
        with Image.open(path) as img:
            if img.format not in PHOTO_FORMATS:
                raise InvalidArgument(f"{img.format} images are not taken as photos; send it "
                                      "as a document", code="MEDIA_TYPE_MISMATCH")
            width, height = img.size
            if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
                raise _too_large(width, height, max_pixels)
            img.load()  # every pixel: a truncated or corrupt file fails here, not later
            mime = PHOTO_FORMATS[img.format]
            exif = img.getexif()
            stripped = False
            if not keep_location and _GPS_IFD in exif:
                _rewrite_without_gps(img, exif, path)
                stripped = True
            _thumbnail(img, thumb)
            shown = ImageOps.exif_transpose(img, in_place=False) if exif else img
            return Photo(mime, shown.width, shown.height, stripped)
    except InvalidArgument:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidArgument(f"this image decodes to more than {max_pixels} pixels",
                              code="IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        raise InvalidArgument("this file is not an image Pigeon can read; send it as a "
                              "document", code="MEDIA_TYPE_MISMATCH") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        # Pillow reports a damaged file with any of these, depending on the decoder.
        raise InvalidArgument(f"this image is damaged or truncated ({type(exc).__name__})",
                              code="IMAGE_INVALID") from None


def _rewrite_without_gps(img: Image.Image, exif: Image.Exif, path: Path) -> None:
    del exif[_GPS_IFD]
    tmp = path.with_name(path.name + ".nogps")
    options: dict[str, object] = {"exif": exif.tobytes()}
    if img.info.get("icc_profile"):
        options["icc_profile"] = img.info["icc_profile"]
    if img.format == "JPEG":
        # The original quantisation tables: as close to the original as Pillow can re-encode.
        options.update(quality="keep", subsampling="keep")
    elif img.format == "WEBP":
        options.update(quality=90)
    if getattr(img, "n_frames", 1) > 1:
        options["save_all"] = True
    img.save(tmp, format=img.format, **options)
    tmp.replace(path)


def _thumbnail(img: Image.Image, thumb: Path) -> None:
    small = ImageOps.exif_transpose(img, in_place=False)
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    if small.mode in ("RGBA", "LA") or (small.mode == "P" and "transparency" in small.info):
        rgba = small.convert("RGBA")
        small = Image.new("RGB", rgba.size, "white")
        small.paste(rgba, mask=rgba.getchannel("A"))
    elif small.mode != "RGB":
        small = small.convert("RGB")
    small.save(thumb, format="JPEG", quality=80, optimize=True)
