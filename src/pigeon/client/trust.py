"""``client.trust``: which devices of the people you write to you have seen and verified, and
the warnings a secret chat owes its user when that changes (issue 9, deliverable 6).

The store lives in ``trust.vault`` in the profile directory, sealed under the key of the
device vault (:meth:`pigeon.crypto.vault.Vault.sibling`), so the passphrase opens both and
nothing about whom you verified is on disk in the clear. It outlives a new login of this
profile (a new device of yours still knows whom you verified).

A device is *verified* for one Ed25519 key only: a record is keyed by user, device id and
that key, so a device whose key changed is a new, unverified device (and a warning).

How ``send --secret`` and ``receive`` use it (cli/secret.py)::

    warnings = await client.trust.check([peer_id, me])  # new devices, changed keys; once
    for w in warnings: warn(w.message)                   # JSON: w.as_json()
    client.secret.require_verified = client.trust.require_verified_users  # --only-verified

Every read-modify-write of the store is done under ``client.e2e_guard`` (the CLI's lock on
the profile's end-to-end state) and reads the file again if another process wrote it since,
so a ``receive --follow`` never overwrites what a ``devices verify`` beside it stored.

The first time a user's devices are seen they are remembered without a warning (trust on
first use, as Signal does for safety numbers): what warns is a change after that, even when
every device of theirs had gone from the server's answer in between (a server hiding them
and then offering one of its own still warns).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from pigeon.crypto.vault import VaultDamaged, signature
from pigeon.protocol.errors import Forbidden, PigeonError
from pigeon.protocol.keys import DeviceKeys

if TYPE_CHECKING:
    from .client import Client

TRUST_FILE = "trust.vault"
#: devices remembered per user, at most (a user's current devices replace the old record)
MAX_DEVICES_PER_USER = 256


class UnverifiedDevices(Forbidden):
    """``--only-verified``: some devices the message would be encrypted for are not verified;
    nothing was sent. ``devices`` names them."""

    code = "UNVERIFIED_DEVICES"

    def __init__(self, devices: list[DeviceKeys]) -> None:
        self.devices = devices
        names = ", ".join(f"device {d.device_id} of user:{d.user_id}" for d in devices[:5])
        more = f" and {len(devices) - 5} more" if len(devices) > 5 else ""
        super().__init__(f"not sent: {names}{more} not verified (run `pigeon devices verify "
                         f"user:{devices[0].user_id}`, or send without --only-verified)")


class TrustStoreDamaged(PigeonError):
    """``trust.vault`` cannot be read: sealed under another device vault, or altered."""

    code = "TRUST_STORE_DAMAGED"


class Seen(msgspec.Struct):
    ed25519: str
    verified: bool = False


class TrustState(msgspec.Struct):
    # user id -> device id -> the key last seen for it (users never looked at are absent)
    users: dict[int, dict[int, Seen]] = {}


class TrustWarning(msgspec.Struct, frozen=True):
    """A change in a user's devices since this device last looked: ``new_device`` or
    ``key_changed`` (``previous`` the old Ed25519 key)."""

    kind: Literal["new_device", "key_changed"]
    user_id: int
    device_id: int
    name: str
    ed25519: str
    previous: str | None = None

    @property
    def message(self) -> str:
        """One line for people (the device name is the peer's: escape it before printing)."""
        if self.kind == "new_device":
            return (f"user:{self.user_id} has a new device {self.device_id} ({self.name}) since "
                    f"you last saw their devices; it is not verified")
        return (f"the key of device {self.device_id} ({self.name}) of user:{self.user_id} "
                f"changed since you last saw it: it is not verified (anyone holding the server "
                f"could have put it there)")

    def as_json(self) -> dict[str, object]:
        return {"type": "device_warning", "warning": self.kind, "user_id": self.user_id,
                "device_id": self.device_id, "name": self.name,
                "fingerprint": fingerprint(self.ed25519)}


def fingerprint(ed25519: str) -> str:
    """An Ed25519 key as people compare it: its base64 in groups of four."""
    return " ".join(ed25519[i:i + 4] for i in range(0, len(ed25519), 4))


def changes(state: TrustState, user_id: int,
            devices: list[DeviceKeys]) -> list[TrustWarning]:
    """The warnings ``devices`` (all of the user's current ones) owe against ``state``, which
    is brought up to date: the rule, without I/O."""
    known = state.users.get(user_id)
    if known is None and not devices:
        return []  # nothing seen yet (or not visible to us yet): the first sight is later
    now: dict[int, Seen] = {}
    warnings = []
    for device in devices[:MAX_DEVICES_PER_USER]:
        key = device.identity.ed25519
        before = known.get(device.device_id) if known is not None else None
        if before is not None and before.ed25519 == key:
            now[device.device_id] = before
            continue
        now[device.device_id] = Seen(key)
        if before is not None:
            warnings.append(TrustWarning("key_changed", user_id, device.device_id, device.name,
                                         key, before.ed25519))
        elif known is not None:  # seen before, even with every device gone since
            warnings.append(TrustWarning("new_device", user_id, device.device_id, device.name,
                                         key))
    state.users[user_id] = now
    return warnings


def is_verified(state: TrustState, device: DeviceKeys) -> bool:
    seen = state.users.get(device.user_id, {}).get(device.device_id)
    return seen is not None and seen.verified and seen.ed25519 == device.identity.ed25519


_decoder = msgspec.msgpack.Decoder(TrustState)


class Trust:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._state: TrustState | None = None
        self._on_disk: tuple[int, int, int] | None = None  # the file as last read or written
        self._lock = asyncio.Lock()

    async def _load(self) -> TrustState:
        path = self._path()
        if self._state is not None and path is not None and \
                await asyncio.to_thread(signature, path) != self._on_disk:
            self._state = None  # another process (`devices verify`) wrote it since
        if self._state is None:
            self._on_disk = await asyncio.to_thread(signature, path)
            try:
                data = await self._client.devices.vault.sibling(self._path()).load()
                self._state = _decoder.decode(data) if data is not None else TrustState()
            except (VaultDamaged, msgspec.DecodeError):
                # Never start over silently: that would forget whom you verified and make
                # every changed key look like a first sight.
                raise TrustStoreDamaged(f"{self._path()} cannot be read (made under another "
                                        "device vault, or altered): move it away to start "
                                        "over, then verify devices again") from None
        return self._state

    def _path(self) -> Path | None:
        directory = self._client.profile.directory
        return directory / TRUST_FILE if directory is not None else None

    async def _save(self) -> None:
        assert self._state is not None
        path = self._path()
        vault = self._client.devices.vault.sibling(path)
        await vault.save(msgspec.msgpack.encode(self._state))
        self._on_disk = await asyncio.to_thread(signature, path)

    async def check(self, user_ids: list[int],
                    devices: list[DeviceKeys] | None = None) -> list[TrustWarning]:
        """What changed in these users' devices since this device last looked (``devices``:
        all their current ones, if already queried), remembered so that it warns once. This
        device itself is left out."""
        if devices is None:
            devices = await self._client.devices.query(user_ids)
        own = self._client.profile.session_id
        async with self._client.e2e_guard(), self._lock:
            state = await self._load()
            warnings = []
            for user_id in dict.fromkeys(user_ids):
                warnings += changes(state, user_id, [
                    d for d in devices if d.user_id == user_id and d.device_id != own])
            await self._save()
        return warnings

    async def is_verified(self, device: DeviceKeys) -> bool:
        if device.device_id == self._client.profile.session_id:
            return True  # this device: its own keys are what it holds
        async with self._client.e2e_guard(), self._lock:
            return is_verified(await self._load(), device)

    async def require_verified(self, devices: list[DeviceKeys]) -> None:
        """UnverifiedDevices unless each device (this one excepted) is verified."""
        own = self._client.profile.session_id
        async with self._client.e2e_guard(), self._lock:
            state = await self._load()
        missing = [d for d in devices if d.device_id != own and not is_verified(state, d)]
        if missing:
            raise UnverifiedDevices(missing)

    async def require_verified_users(self, user_ids: list[int]) -> None:
        """:meth:`require_verified` for every current device of these users: the check
        ``client.secret.require_verified`` takes (``send --secret --only-verified``)."""
        await self.require_verified(await self._client.devices.query(user_ids))

    async def set_verified(self, device: DeviceKeys, verified: bool = True) -> None:
        """Remember ``device`` verified (or not) for its current key."""
        async with self._client.e2e_guard(), self._lock:
            state = await self._load()
            users = state.users.setdefault(device.user_id, {})
            users[device.device_id] = Seen(device.identity.ed25519, verified)
            await self._save()
