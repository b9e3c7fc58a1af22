"""What another region asks over request/reply (lookups, blobs, sticker sets, keys, claims,
group calls): any client of the supercluster can publish on these subjects, so a question
that does not decode is logged and left unanswered (the asker times out), never raised into
the subscription."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec

log = logging.getLogger("pigeon.regions")

Q = TypeVar("Q")


def read_ask(msg: Any, kind: type[Q], what: str) -> Q | None:
    """The ``kind`` that ``msg`` carries, or None (logged: "malformed ``what`` dropped")."""
    try:
        return msgspec.msgpack.decode(msg.data, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("regions: malformed %s dropped: %s", what, exc)
        return None
