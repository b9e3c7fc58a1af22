"""Byte budgets: how a page of results or a batch of pushed updates is cut so that no frame
the server sends exceeds ``limits.MAX_SERVER_FRAME_BYTES``.

A page's items are measured as MessagePack, exactly as they will be encoded inside the
frame; what wraps them (the frame's tag and request id, a difference's ``state`` and
``more``, the list header) takes well under ``ENVELOPE_BYTES``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import limits

ENVELOPE_BYTES = 1024
#: what the items of one result page may take together
PAGE_BYTES = limits.MAX_SERVER_FRAME_BYTES - ENVELOPE_BYTES

_encoder = msgspec.msgpack.Encoder()


def encoded_size(obj: Any) -> int:
    return len(_encoder.encode(obj))


class ByteBudget:
    """Admits items to a page while their encoded bytes fit. The first item is always admitted,
    so a page is never empty while items remain (a client pages on from the last item it got);
    no single item comes near a page (the largest, a message of 4,096 four-byte characters,
    is about 16.5 KiB)."""

    def __init__(self, max_bytes: int = PAGE_BYTES) -> None:
        self.left = max_bytes
        self.taken = 0

    def take(self, item: Any) -> bool:
        size = encoded_size(item)
        if self.taken and size > self.left:
            return False
        self.left -= size
        self.taken += 1
        return True
