"""``client.devices``: this device's end-to-end keys and its envelopes (issue 9, first steps).

Each logged-in device has its own vodozemac account, kept in ``device-keys.vault`` in the
profile directory, encrypted under the passphrase given to :meth:`Devices.open`
(:mod:`pigeon.crypto.vault`). Opening publishes the device's keys; it tops its one-time
keys up whenever the server says they run low (the answer of ``keys.upload``, a
``keys_low`` push, or after a session was started with one of them).

:meth:`Devices.send` encrypts for every device of the given users (claiming a key and
starting an Olm session with those it has none with) and sends all copies in one call;
:meth:`Devices.receive` reads the device's inbox, decrypts, saves the advanced sessions and
only then acknowledges, so that a crash in between reads the envelopes again instead of
losing them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from pigeon.crypto.olm import CannotDecrypt, OlmDevice, verified_identity
from pigeon.crypto.vault import Vault
from pigeon.domain.streams import device_stream
from pigeon.protocol import methods as m
from pigeon.protocol.errors import InvalidArgument
from pigeon.protocol.keys import (
    MAX_DEVICES_PER_CALL,
    MAX_ENVELOPES_PER_CALL,
    MAX_KEYS_PER_UPLOAD,
    DeviceKeys,
    Envelope,
    IdentityKeys,
    KeyCounts,
)
from pigeon.protocol.streams import read_item
from pigeon.protocol.types import Affected
from pigeon.protocol.updates import Envelope as Delivered

from .profile import write_private

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("pigeon.client.devices")

VAULT_FILE = "device-keys.vault"


class DeviceMessage(msgspec.Struct, frozen=True):
    """An envelope from another device: its ``body``, or why it could not be read
    (``error``; ``body`` None). Never dropped silently."""

    sender_id: int
    sender_device: int
    seq: int
    body: bytes | None
    error: str | None = None


class Devices:
    def __init__(self, client: Client, passphrase: bytes | str | None = None) -> None:
        self._client = client
        # Kept in memory only, so that signing in opens the new device's keys by itself.
        self._passphrase = passphrase
        self._device: OlmDevice | None = None
        self._vault: Vault | None = None
        self._identities: dict[int, IdentityKeys] = {}  # device id -> verified identity
        self._lock = asyncio.Lock()  # one change of the account and sessions at a time
        self.top_ups = 0

    @property
    def is_open(self) -> bool:
        return self._device is not None

    @property
    def identity(self) -> IdentityKeys:
        return self._opened().identity()

    @property
    def vault(self) -> Vault:
        """The opened vault, for the other stores sealed under its key (the trust store)."""
        self._opened()
        assert self._vault is not None
        return self._vault

    def _opened(self) -> OlmDevice:
        if self._device is None:
            raise RuntimeError("open this device's keys first: client.devices.open(passphrase)")
        return self._device

    async def open(self, passphrase: bytes | str) -> KeyCounts:
        """Unlock this device's keys (WrongPassphrase if the passphrase is not theirs),
        creating them for a device that has none, and publish what the server lacks."""
        profile = self._client.profile
        if profile.user_id is None or profile.session_id is None:
            raise RuntimeError("log in before opening the device's keys")
        self._passphrase = passphrase
        secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
        path = profile.directory / VAULT_FILE if profile.directory is not None else None
        vault, data = await Vault.open(path, secret, write_private)
        device = OlmDevice.load(data, vault.pickle_key) if data is not None else None
        if device is None or device.device_id != profile.session_id:
            # A new login is a new device, with a new account; the old one's keys went
            # with its session on the server.
            device = OlmDevice.new(profile.user_id, profile.session_id)
        self._vault, self._device = vault, device
        await self._save()
        return await self.publish()

    async def signed_in(self) -> None:
        """A sign-in made this client a new device: with a passphrase known, its keys are
        made and published now (an upload at login), without the application asking."""
        self._device = None
        if self._passphrase is not None:
            await self.open(self._passphrase)

    async def _save(self) -> None:
        assert self._vault is not None and self._device is not None
        await self._vault.save(self._device.dump(self._vault.pickle_key))

    async def publish(self) -> KeyCounts:
        """Publish the identity keys and a fallback key if the server lacks them, and top
        one-time keys up to what it wants held once they run low."""
        async with self._lock:
            device = self._opened()
            counts: KeyCounts = await self._client.call("keys.upload", m.UploadKeys())
            identity = None if counts.identity else device.identity()
            fallback = None if counts.fallback else device.new_fallback_key()
            want = 0
            if counts.one_time_keys < counts.low:
                limit = min(counts.wanted, device.account.max_number_of_one_time_keys)
                want = max(0, limit - counts.one_time_keys)
            if identity is None and fallback is None and not want:
                return counts
            keys = device.new_one_time_keys(min(want, MAX_KEYS_PER_UPLOAD))
            # Private halves first to disk: a key published but lost locally would be handed
            # out to someone whose first message then cannot be read.
            await self._save()
            counts = await self._client.call("keys.upload", m.UploadKeys(
                identity=identity, one_time_keys=keys, fallback_key=fallback))
            device.mark_published()
            await self._save()
            self.top_ups += bool(keys)
            return counts

    def top_up_soon(self) -> None:
        """The server said this device runs low: top up in the background."""
        if self.is_open:
            task = asyncio.create_task(self.publish())
            task.add_done_callback(_log_failure)

    # -- finding devices --------------------------------------------------------------------
    async def query(self, user_ids: list[int]) -> list[DeviceKeys]:
        """The devices of these users whose identity keys verify (others are left out and
        logged: a server cannot slip a key of its own in)."""
        out: list[DeviceKeys] = []
        for start in range(0, len(user_ids), MAX_DEVICES_PER_CALL):
            found: list[DeviceKeys] = await self._client.call("keys.query", m.QueryKeys(
                user_ids=user_ids[start:start + MAX_DEVICES_PER_CALL]))
            for device in found:
                try:
                    verified_identity(device.user_id, device.device_id, device.identity)
                except InvalidArgument:
                    log.warning("device %d of user %d has keys that do not verify: skipped",
                                device.device_id, device.user_id)
                    continue
                self._identities[device.device_id] = device.identity
                out.append(device)
        return out

    # -- sending ----------------------------------------------------------------------------
    async def send(self, user_ids: list[int], body: bytes) -> int:
        """``body`` encrypted for every device of these users (this user's other devices
        included when named); returns how many devices it went to."""
        own = self._opened().device_id
        targets = [d for d in await self.query(user_ids) if d.device_id != own]
        return await self.send_to_devices(targets, body)

    async def send_to_devices(self, targets: list[DeviceKeys], body: bytes) -> int:
        async with self._lock:
            device = self._opened()
            missing = [t.device_id for t in targets
                       if not device.has_session(t.identity.curve25519)]
            for start in range(0, len(missing), MAX_DEVICES_PER_CALL):
                for claimed in await self._client.call("keys.claim", m.ClaimKeys(
                        device_ids=missing[start:start + MAX_DEVICES_PER_CALL])):
                    try:
                        device.start_session(claimed)
                    except InvalidArgument:
                        log.warning("device %d offered a key that does not verify: skipped",
                                    claimed.device_id)
            envelopes = []
            for target in targets:
                if device.has_session(target.identity.curve25519):
                    kind, ciphertext = device.encrypt(target.identity, body)
                    envelopes.append(Envelope(device_id=target.device_id, type=kind,
                                              ciphertext=ciphertext))
            await self._save()  # the ratchets moved on: never reuse a message key
        sent = 0
        for start in range(0, len(envelopes), MAX_ENVELOPES_PER_CALL):
            answer: Affected = await self._client.call("envelopes.send", m.SendEnvelopes(
                envelopes=envelopes[start:start + MAX_ENVELOPES_PER_CALL]))
            sent += answer.count
        return sent

    # -- receiving --------------------------------------------------------------------------
    async def receive(self) -> list[DeviceMessage]:
        """Every envelope waiting in this device's inbox, decrypted (or with the reason it
        could not be), then acknowledged."""
        stream = device_stream(self._opened().device_id)
        out: list[DeviceMessage] = []
        seq = 0
        while True:
            page = await self._client.call("updates.get_stream_difference",
                                           m.GetStreamDifference(stream=stream, seq=seq))
            items = [read_item(item) for item in page.items]
            out += await self._open_envelopes(
                [(i.seq, i.body) for i in items if isinstance(i.body, Delivered)])
            seq = page.seq
            if not page.more:
                break
        if seq:
            await self._client.call("updates.ack_stream", m.AckStream(stream=stream, seq=seq))
        return out

    async def _open_envelopes(self, envelopes: list[tuple[int, Delivered]]) -> list[DeviceMessage]:
        unknown = sorted({e.sender_id for _, e in envelopes
                          if e.sender_device not in self._identities})
        if unknown:
            await self.query(unknown)
        started = False
        out = []
        async with self._lock:
            device = self._opened()
            for seq, envelope in envelopes:
                sender = self._identities.get(envelope.sender_device)
                body, error = None, None
                if sender is None:
                    error = "the sending device is unknown (logged out, or not one you see)"
                else:
                    try:
                        body = device.decrypt(sender, envelope.type, envelope.ciphertext)
                        started |= envelope.type == 0
                    except CannotDecrypt as exc:
                        error = str(exc)
                out.append(DeviceMessage(envelope.sender_id, envelope.sender_device, seq,
                                         body, error))
            await self._save()
        if started:  # a one-time key of ours was used up
            self.top_up_soon()
        return out


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("topping up one-time keys failed: %s", task.exception())
