"""Device keys and device-to-device envelopes on the wire (issue 9, deliverables 1 and 2).

Every logged-in device (session) owns a vodozemac account and publishes its public keys: its
Curve25519 and Ed25519 identity keys, signed one-time keys and a signed fallback key. The
server stores these public keys and checks each signature; it never holds a private key.
Envelopes are opaque: the server stores and forwards their bytes, never reads them.

What a device signs is fixed here, shared by the server (which verifies) and the SDK (which
signs), so that both build the same bytes: a signature binds a key to its device, its owner
and its purpose, and cannot be replayed for another device or as another kind of key.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from .types import ID, Struct

#: a 32-byte public key, unpadded base64 (vodozemac's ``to_base64``)
PublicKey = Annotated[str, Meta(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9+/]{43}$")]
#: a 64-byte Ed25519 signature, unpadded base64
Signature = Annotated[str, Meta(min_length=86, max_length=86, pattern=r"^[A-Za-z0-9+/]{86}$")]
#: a one-time key's id as the device's account names it (vodozemac: 11 base64 characters)
KeyId = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9+/=_-]+$")]

#: one-time keys in one upload, at most
MAX_KEYS_PER_UPLOAD = 100
#: devices named in one claim, users in one query, envelopes in one send, at most
MAX_DEVICES_PER_CALL = 100
MAX_USERS_PER_QUERY = 100
MAX_ENVELOPES_PER_CALL = 100
#: bytes of one envelope's ciphertext, at most (an Olm message carrying a Megolm key or a
#: message of 4096 characters is a few KiB); a call still fits in one frame
MAX_CIPHERTEXT_BYTES = 16 * 1024
#: ciphertext types: vodozemac's Olm message types are 0 (pre-key) and 1 (normal); the
#: server forwards any small number without reading it, so later kinds need no server change
CiphertextType = Annotated[int, Meta(ge=0, le=255)]
Ciphertext = Annotated[bytes, Meta(min_length=1, max_length=MAX_CIPHERTEXT_BYTES)]


class IdentityKeys(Struct):
    """A device's identity keys, the Curve25519 one signed by the Ed25519 one
    (:func:`identity_signed`)."""

    curve25519: PublicKey
    ed25519: PublicKey
    signature: Signature


class SignedKey(Struct):
    """A one-time or fallback key, signed by its device's Ed25519 key (:func:`key_signed`)."""

    key_id: KeyId
    key: PublicKey
    signature: Signature


class KeyCounts(Struct):
    """How many one-time keys the server holds for the caller's device, and how many it wants
    held: below ``low`` the device uploads more (``keys.upload``), up to ``wanted``."""

    one_time_keys: int
    low: int
    wanted: int
    fallback: bool
    identity: bool


class DeviceKeys(Struct):
    """One device of a user, with its identity keys (``keys.query``)."""

    user_id: int
    device_id: int
    name: str
    identity: IdentityKeys


class ClaimedKey(Struct):
    """A key to start an Olm session with a device: a one-time key handed out to nobody
    else, or its fallback key (``fallback`` true) when it has none left."""

    user_id: int
    device_id: int
    identity: IdentityKeys
    key: SignedKey
    fallback: bool = False


class Envelope(Struct):
    """One device's copy of a message: opaque bytes for it alone."""

    device_id: ID
    type: CiphertextType
    ciphertext: Ciphertext


def identity_signed(user_id: int, device_id: int, curve25519: str, ed25519: str) -> bytes:
    """What a device signs to publish its identity keys."""
    return f"pigeon.identity.v1|{user_id}|{device_id}|{curve25519}|{ed25519}".encode()


def key_signed(device_id: int, purpose: str, key_id: str, key: str) -> bytes:
    """What a device signs for a one-time key (``purpose`` "otk") or its fallback key
    ("fallback")."""
    return f"pigeon.{purpose}.v1|{device_id}|{key_id}|{key}".encode()
