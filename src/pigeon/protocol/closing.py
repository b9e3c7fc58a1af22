"""What a WebSocket close frame's reason says: the error code, and when to come back.

A refused or cut-off device is usually told why in an error frame first; but that frame may
never reach it (a slow consumer's outbox is dropped, a proxy cuts the stream), while the close
frame's reason always travels with the close. So the reason carries the same retry hints as
the error frame (issue 13): ``CODE`` or ``CODE retry_after=S`` or
``CODE retry_after=S retry_spread=W``, seconds with at most three decimals. RFC 6455 §5.5
bounds a control frame's payload to 125 bytes, two of them the code: the reason stays well
under 123.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from . import limits

__all__ = ["CloseReason", "MAX_REASON_BYTES", "format_reason", "parse_reason"]

MAX_REASON_BYTES = 123
_REASON = re.compile(
    r"([A-Z][A-Z0-9_]{0,39})(?: retry_after=(\d{1,7}(?:\.\d{1,3})?))?"
    r"(?: retry_spread=(\d{1,7}(?:\.\d{1,3})?))?")


class CloseReason(NamedTuple):
    code: str
    retry_after: float | None = None
    retry_spread: float | None = None


def _seconds(value: float) -> str:
    text = f"{min(max(0.0, value), limits.MAX_RETRY_SECONDS):.3f}".rstrip("0").rstrip(".")
    return text or "0"


def format_reason(code: str, retry_after: float | None = None,
                  retry_spread: float | None = None) -> str:
    """The reason for a close; hints that are not finite numbers are left out."""
    text = code
    if retry_after is not None and math.isfinite(retry_after):
        text += f" retry_after={_seconds(retry_after)}"
        if retry_spread is not None and math.isfinite(retry_spread):
            text += f" retry_spread={_seconds(retry_spread)}"
    return text


def parse_reason(text: str) -> CloseReason | None:
    """The code and hints of a reason this module formatted; None for any other text (older
    servers send the bare code, which parses; a proxy's own reason does not)."""
    if len(text) > MAX_REASON_BYTES:
        return None
    match = _REASON.fullmatch(text)
    if match is None:
        return None

    def seconds(group: str | None) -> float | None:
        return None if group is None else min(float(group), limits.MAX_RETRY_SECONDS)

    return CloseReason(match[1], seconds(match[2]), seconds(match[3]))
