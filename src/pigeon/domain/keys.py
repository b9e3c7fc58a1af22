"""Rules of device keys and envelopes (issue 9): bounds, which key a claim hands out, who may
put envelopes in whose inbox. Pure: backends call these with the rows they read, inside the
transaction that writes, so a check and its write stay atomic.
"""

from __future__ import annotations

from typing import NamedTuple

from pigeon.protocol.errors import Conflict, InvalidArgument, NotFound

#: one-time keys the server holds per device, at most
MAX_STORED_ONE_TIME_KEYS = 100
#: how many one-time keys a device is asked to keep published (vodozemac's account keeps
#: the private halves of its 50 newest: more would be handed out but unreadable)
WANTED_ONE_TIME_KEYS = 50
#: below this many, a device is told to upload more (``KeyCounts.low``, a ``keys_low`` push)
LOW_ONE_TIME_KEYS = 20


class Held(NamedTuple):
    """What the server holds for one device, as a backend read it."""

    identity: tuple[str, str] | None  # (curve25519, ed25519) once published
    one_time_keys: int
    fallback: bool


def check_identity(held: Held, curve25519: str, ed25519: str) -> bool:
    """Whether an upload's identity keys are new (True) or the ones held (False). A device's
    identity never changes: its keys are what others verify; a device with a new account
    logs in again, as a new device."""
    if held.identity is None:
        return True
    if held.identity != (curve25519, ed25519):
        raise Conflict("this device published other identity keys; log in again as a new "
                       "device to use new ones", code="IDENTITY_KEYS_CHANGED")
    return False


def require_identity(held: Held) -> None:
    """Keys are verified with the device's Ed25519 key, so it comes first."""
    if held.identity is None:
        raise InvalidArgument("publish the device's identity keys first (keys.upload "
                              "with identity)", code="IDENTITY_KEYS_MISSING")


def check_room(held: Held, adding: int) -> None:
    if held.one_time_keys + adding > MAX_STORED_ONE_TIME_KEYS:
        raise InvalidArgument(
            f"the server holds at most {MAX_STORED_ONE_TIME_KEYS} one-time keys per device "
            f"({held.one_time_keys} now)", code="TOO_MANY_KEYS")


def runs_low(one_time_keys: int) -> bool:
    return one_time_keys < LOW_ONE_TIME_KEYS


class Ties(NamedTuple):
    """What links an envelope's sender to the owner of a target device."""

    is_self: bool = False      # the sender's own other devices
    contact: bool = False      # either wrote to the other in a private chat
    share_group: bool = False  # members of one group together


def may_send_envelope(ties: Ties) -> bool:
    """Envelopes reach the sender's own devices, their contacts' and their chat peers', and
    nobody else's: a stranger's inbox is not a queue anyone may fill."""
    return any(ties)


def not_reachable(device_id: int) -> NotFound:
    """One answer for a device that does not exist and one the sender may not reach."""
    return NotFound(f"no device {device_id} that you may send to", code="DEVICE_NOT_FOUND")
