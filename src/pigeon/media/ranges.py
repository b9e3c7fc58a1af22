"""HTTP ``Range: bytes=...`` (RFC 9110, 14.1.2), one range at a time. Pure: takes the
header and the file's size, gives the byte span or refuses it; the server answers a refused
range with 416 and ``Content-Range: bytes */size``."""

from __future__ import annotations

import re

_SPEC = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


class RangeNotSatisfiable(ValueError):
    """The Range header makes no sense for this file; the message says why."""


def parse_range(header: str, size: int) -> tuple[int, int]:
    """``(first, last)``, both inclusive, of the bytes ``header`` asks for in a file of
    ``size`` bytes."""
    m = _SPEC.match(header.strip().replace(" ", ""))
    if m is None:
        raise RangeNotSatisfiable("expected one range, as bytes=FIRST-LAST, bytes=FIRST- or "
                                  "bytes=-SUFFIX")
    first, last = m[1], m[2]
    if not first:
        if not last or int(last) == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        if size == 0:
            raise RangeNotSatisfiable("the file is empty")
        return max(0, size - int(last)), size - 1
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable(f"the range starts at {start}, past the end ({size} bytes)")
    if not last:
        return start, size - 1
    end = int(last)
    if end < start:
        raise RangeNotSatisfiable(f"the range ends ({end}) before it starts ({start})")
    return start, min(end, size - 1)
