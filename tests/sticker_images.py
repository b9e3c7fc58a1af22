"""Small images for the sticker tests, made with Pillow in memory (nothing shipped)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw


def png(width: int = 300, height: int = 200, colour: tuple[int, int, int] = (200, 40, 40),
        transparent: bool = True) -> bytes:
    """A disc on a transparent (or white) background."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0) if transparent else (255,) * 4)
    ImageDraw.Draw(img).ellipse((width // 8, height // 8, width * 7 // 8, height * 7 // 8),
                                fill=(*colour, 255))
    return save(img, "PNG")


def save(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def jpeg(width: int = 640, height: int = 480) -> bytes:
    return save(Image.new("RGB", (width, height), (10, 120, 200)), "JPEG", quality=80)


def animation(fmt: str, frames: int = 6, duration: int = 100, side: int = 120) -> bytes:
    pictures = [Image.new("RGBA", (side, side), (i * 40 % 256, 80, 160, 255))
                for i in range(frames)]
    return save(pictures[0], fmt, save_all=True, append_images=pictures[1:],
                duration=duration, loop=0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's
    shape: a few hundred bytes that would decode to gigabytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat)
            + _chunk(b"IEND", b""))
