"""What travels between regions (issue 12, deliverable 6; docs/architecture.md, "Regions"):
a private message for someone homed in the receiving region, and lookups of people. Every
struct keeps unknown fields (a newer region may add some), and a message of an unknown kind
decodes as :class:`UnknownCross`, which the receiver acknowledges and skips."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from . import limits
from .errors import InvalidArgument

RegionName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
ID = Annotated[int, Meta(ge=1, le=2**62)]


class RemoteUser(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What a region keeps of an account homed elsewhere: enough for a chat row to point at."""

    id: ID
    name: Annotated[str, Meta(max_length=limits.MAX_NAME_CHARS)]
    username: Annotated[str, Meta(max_length=limits.USERNAME_MAX)] | None = None


class CrossMessage(msgspec.Struct, frozen=True, tag="message", forbid_unknown_fields=False):
    """A private text message from ``sender`` (homed in ``origin``) to ``recipient_id``
    (homed in the region it is sent to). ``(sender.id, random_id)`` is its identity in every
    region: applying it twice writes it once."""

    origin: RegionName
    sender: RemoteUser
    recipient_id: ID
    random_id: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]
    date: Annotated[float, Meta(ge=0, le=limits.MAX_DATE)]


class UnknownCross(msgspec.Struct, frozen=True, tag="unknown"):
    """The fallback for a kind a newer region sends: logged, acknowledged and skipped."""


class Lookup(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """Asked of a user's home region: by phone (E.164) or by username (one of the two)."""

    phone: Annotated[str, Meta(max_length=limits.MAX_PHONE_CHARS)] | None = None
    username: Annotated[str, Meta(max_length=limits.USERNAME_MAX)] | None = None


class Found(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    user: RemoteUser | None = None


_cross_decoder: msgspec.msgpack.Decoder[CrossMessage | UnknownCross] = msgspec.msgpack.Decoder(
    CrossMessage | UnknownCross)


def encode(value: msgspec.Struct) -> bytes:
    return msgspec.msgpack.encode(value)


def decode_cross(data: bytes) -> CrossMessage | UnknownCross:
    """A message from another region; an unknown kind decodes as UnknownCross, anything
    malformed raises InvalidArgument (the caller logs and drops it)."""
    if len(data) > limits.MAX_FRAME_BYTES:
        raise InvalidArgument("cross-region message too large")
    try:
        return _cross_decoder.decode(data)
    except msgspec.ValidationError as exc:
        if "Invalid value" in str(exc) and "$.type" in str(exc):
            return UnknownCross()
        raise InvalidArgument(f"malformed cross-region message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"malformed cross-region message: {exc}") from None
