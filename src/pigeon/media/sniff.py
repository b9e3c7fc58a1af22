"""A file's type from its first bytes, never from its name or the client's word.

Only what a messenger must tell apart: the image formats Pillow then decodes fully, and the
common document types, so that a download is served with a true Content-Type. Everything
else is ``application/octet-stream``.
"""

from __future__ import annotations

#: bytes needed to tell every type below apart
HEAD_BYTES = 64

#: the image formats a photo may be in: mime by Pillow's format name
PHOTO_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                 "GIF": "image/gif"}
IMAGE_MIMES = frozenset(PHOTO_FORMATS.values())

_MAGIC: list[tuple[bytes, int, str]] = [
    # (signature, offset, mime): first match wins
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"fLaC", 0, "audio/flac"),
    (b"\x1aE\xdf\xa3", 0, "video/webm"),
    (b"BM", 0, "image/bmp"),
]


def sniff(head: bytes) -> str:
    """The mime type that ``head`` (a file's first :data:`HEAD_BYTES`) shows."""
    if len(head) >= 12 and head[:4] == b"RIFF":
        riff = head[8:12]
        if riff == b"WEBP":
            return "image/webp"
        if riff == b"WAVE":
            return "audio/wav"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        return "audio/mp4" if brand == b"M4A " else "video/mp4"
    for signature, offset, mime in _MAGIC:
        if head[offset:offset + len(signature)] == signature:
            return mime
    if head and _looks_like_text(head):
        return "text/plain"
    return "application/octet-stream"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the head is still text.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True
