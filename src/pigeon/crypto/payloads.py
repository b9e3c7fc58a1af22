"""What the plaintext of a device-to-device envelope holds: one tagged msgpack struct.

The server never sees these: they travel inside Olm ciphertext (:mod:`pigeon.crypto.olm`)
between two devices. Secret chats, end-to-end encrypted groups and verification each own
their own variants; a device reads any it does not know (a newer version's) as
:class:`UnknownPayload` and skips it, never failing its inbox.

Every bound is checked when decoding, since the sending device is not trusted to be honest:
it may run other code than ours.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from pigeon.protocol import limits

#: a secret chat's id: random, picked by the device that starts it (the server never
#: learns it); 63 bits so that it prints and parses as a positive integer everywhere
SecretChatId = Annotated[int, Meta(ge=1, le=2**63 - 1)]
#: a user's id as a payload names it (0: not said)
UserId = Annotated[int, Meta(ge=0, le=2**62)]
#: a message's id within a secret chat: random bytes, hex, picked by its sender
MessageId = Annotated[str, Meta(min_length=16, max_length=64, pattern=r"^[0-9a-f]+$")]
#: a self-destruct timer in seconds: 1 second to 1 week
Ttl = Annotated[int, Meta(ge=1, le=7 * 24 * 3600)]
#: milliseconds since the epoch, as the sending device's clock says
Millis = Annotated[int, Meta(ge=0, le=2**53)]
#: ids named in one receipt, at most
MAX_IDS_PER_PAYLOAD = 256
#: one base64 key or short opaque field, at most
ShortField = Annotated[str, Meta(max_length=512)]
#: a Megolm session key export, base64 (vodozemac's is a few hundred characters)
SessionKey = Annotated[str, Meta(max_length=4096)]


class Payload(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=False,
              tag_field="p"):
    """The base of every variant; ``p`` on the wire names the variant."""


# -- secret chats, one-to-one --------------------------------------------------------------
class SecretOpen(Payload, tag="secret.open"):
    """A secret chat begins (or a device that joined later is told of it): ``peer`` is the
    other person, from the receiving device's owner's point of view resolved by the reader."""

    chat_id: SecretChatId
    starter: UserId
    peer: UserId
    ttl: Ttl | None = None


class SecretFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A file of a secret chat: where its ciphertext is on the server, and what decrypts
    and checks it (pigeon.crypto.files: AES-256-GCM, a fresh key per file). Only inside
    the end-to-end encrypted message."""

    file_id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
    name: Annotated[str, Meta(max_length=255)] = ""
    size: Annotated[int, Meta(ge=0, le=2**46)]  # of the plaintext
    key: Annotated[str, Meta(min_length=44, max_length=44)]  # base64 of 32 bytes
    nonce: Annotated[str, Meta(min_length=16, max_length=16)]  # base64 of 12 bytes
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]  # of the ciphertext
    mime: Annotated[str, Meta(max_length=100)] = "application/octet-stream"  # the sender's look


class SecretText(Payload, tag="secret.text"):
    """A message; ``peer`` is the other person as the sender sees it (a copy to the
    sender's own other devices names whom it went to). With ``file``, ``text`` is its
    caption (may be empty); a reader that predates files shows the caption alone."""

    chat_id: SecretChatId
    message_id: MessageId
    text: Annotated[str, Meta(max_length=limits.MAX_TEXT_CHARS)]
    sent_at: Millis
    ttl: Ttl | None = None
    peer: UserId = 0
    file: SecretFile | None = None


class SecretShown(Payload, tag="secret.shown"):
    """The recipient showed these messages: the sender's countdowns start."""

    chat_id: SecretChatId
    message_ids: Annotated[list[MessageId], Meta(max_length=MAX_IDS_PER_PAYLOAD)]
    at: Millis


class SecretTtl(Payload, tag="secret.ttl"):
    """The chat's default timer changed (None: messages do not self-destruct)."""

    chat_id: SecretChatId
    ttl: Ttl | None = None


# -- end-to-end encrypted groups -------------------------------------------------------------
class RoomKey(Payload, tag="group.key"):
    """A sender device's Megolm session for a group, shared with one member device; or,
    ``exported``, re-shared from some index on to a device that asked
    (:class:`RoomKeyRequest`). ``sender_device``/``sender_user``: the session's owner when
    one of the reader's own devices forwards it (0: the envelope's sender owns it)."""

    chat_id: Annotated[int, Meta(ge=1, le=2**62)]
    session_id: ShortField
    session_key: SessionKey
    exported: bool = False
    sender_device: Annotated[int, Meta(ge=0, le=2**62)] = 0
    sender_user: Annotated[int, Meta(ge=0, le=2**62)] = 0


# -- sessions that broke ----------------------------------------------------------------------
class Renew(Payload, tag="renew"):
    """Sent on a fresh Olm session by a device that could not decrypt something from this
    peer: the peer's next messages use the new session (and it re-sends group keys).
    ``since``: the sender device's messages after this time (its clock) could not be read
    here: the peer sends again those it still holds (None: nothing is sent again)."""

    reason: ShortField = ""
    since: Millis | None = None


# -- verification (SAS) -------------------------------------------------------------------------
#: a public key, commitment or MAC as vodozemac and hashlib print them: unpadded base64
Base64 = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]


class Verification(Payload, tag="sas"):
    """One step of a SAS verification (:mod:`pigeon.crypto.sas`). ``step`` names it: start,
    accept (``commitment``), key (``key``), mac (``mac`` and ``keys_mac``), cancel (``code``
    and ``reason``) or done. A step this version does not know is ignored by the reader, so
    ``step`` stays a string rather than a closed set."""

    transaction_id: Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    step: Annotated[str, Meta(min_length=1, max_length=16)]
    commitment: Base64 | None = None
    key: Base64 | None = None
    mac: Base64 | None = None
    keys_mac: Base64 | None = None
    code: Annotated[str, Meta(max_length=32)] = ""
    reason: Annotated[str, Meta(max_length=256)] = ""


# -- end-to-end encrypted groups, continued -------------------------------------------------
class RoomKeyRequest(Payload, tag="group.key_request"):
    """A device lacks the key of a group message: sent to the session's owner device and
    to the asker's own other devices, which re-share it (a :class:`RoomKey`, exported at
    ``index``) if the asker is entitled to it."""

    chat_id: Annotated[int, Meta(ge=1, le=2**62)]
    sender_device: Annotated[int, Meta(ge=1, le=2**62)]
    session_id: ShortField
    index: Annotated[int, Meta(ge=0, le=2**32)] = 0


class UnknownPayload(msgspec.Struct, frozen=True):
    """A payload this device could not read: of a variant it does not know (``error``
    empty) or malformed (``error`` says why). Skipped, never fatal."""

    tag: str
    error: str = ""


AnyPayload = (SecretOpen | SecretText | SecretShown | SecretTtl | RoomKey | Renew | Verification
              | RoomKeyRequest)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(AnyPayload)


class _Head(msgspec.Struct):
    p: Any = None


_head_decoder = msgspec.msgpack.Decoder(_Head)
KNOWN_TAGS = frozenset(msgspec.inspect.type_info(t).tag  # type: ignore[attr-defined]
                       for t in AnyPayload.__args__)


def encode_payload(payload: Payload) -> bytes:
    return _encoder.encode(payload)


def read_payload(raw: bytes) -> AnyPayload | UnknownPayload:
    """A payload as a device takes it: decoded, or :class:`UnknownPayload` (never an
    exception: one bad envelope must not stop a device's inbox)."""
    try:
        payload: AnyPayload = _decoder.decode(raw)
        return payload
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        failure = exc
    try:
        head = _head_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        head = _Head()
    tag = head.p if isinstance(head.p, str) else ""
    error = f"malformed {tag or 'payload'}: {failure}" if tag in KNOWN_TAGS or not tag else ""
    return UnknownPayload(tag=tag[:64], error=error)
