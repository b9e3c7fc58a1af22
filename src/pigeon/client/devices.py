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
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from pigeon.crypto.olm import CannotDecrypt, OlmDevice, verified_identity
from pigeon.crypto.vault import Vault, signature
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
    #: a copy of an envelope this device already read (sent twice): nothing to read
    duplicate: bool = False


class Devices:
    def __init__(self, client: Client, passphrase: bytes | str | None = None) -> None:
        self._client = client
        # Kept in memory only, so that signing in opens the new device's keys by itself.
        self._passphrase = passphrase
        self._device: OlmDevice | None = None
        self._vault: Vault | None = None
        self._identities: dict[int, IdentityKeys] = {}  # device id -> verified identity
        self._known: dict[int, DeviceKeys] = {}  # device id -> what the server said of it
        self._lock = asyncio.Lock()  # one change of the account and sessions at a time
        self._save_lock = asyncio.Lock()  # one write of the vault at a time
        self._generation = self._saved_generation = 0  # snapshots taken, and written
        self._pending = b""  # the newest snapshot
        self._on_disk: tuple[int, int, int] | None = None  # the vault file as last written
        self._asking: dict[tuple[int, ...], asyncio.Future[list[DeviceKeys]]] = {}
        self._tasks: set[asyncio.Task[KeyCounts]] = set()
        self.top_ups = 0

    @property
    def is_open(self) -> bool:
        return self._device is not None

    @property
    def vault(self) -> Vault:
        """The opened vault (its key also seals the secret-chat store, the group keys, the
        trust store and the verification mailbox: :meth:`Vault.sibling`)."""
        if self._vault is None:
            raise RuntimeError("open this device's keys first: client.devices.open(passphrase)")
        return self._vault

    @property
    def device_id(self) -> int:
        return self._opened().device_id

    @property
    def identity(self) -> IdentityKeys:
        return self._opened().identity()

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
            device = OlmDevice.new(profile.user_id, profile.session_id,
                                   int(time.time() * 1000))
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
        """Save the state as it is now (the caller holds the lock, or nothing else runs)."""
        await self._flush(self._snapshot())

    def _snapshot(self) -> int:
        # Taken under the lock, so always a consistent state: never one in which a
        # decrypted message's keys are gone but its plaintext is not yet kept.
        assert self._vault is not None and self._device is not None
        self._generation += 1
        self._pending = self._device.dump(self._vault.pickle_key)
        return self._generation

    async def _flush(self, generation: int) -> None:
        """Wait until a snapshot at least as new as ``generation`` is on disk: concurrent
        sends share one write (group commit), not one fsync each."""
        async with self._save_lock:
            if self._saved_generation >= generation:
                return
            assert self._vault is not None
            newest, data = self._generation, self._pending
            await self._vault.save(data)
            self._saved_generation = newest
            self._on_disk = await asyncio.to_thread(signature, self._vault.path)

    async def reload_if_changed(self) -> bool:
        """Take the keys and sessions from disk if another process saved them since this
        one last did (the CLI lets one process at a time hold them, and each reloads)."""
        vault = self._vault
        if vault is None or self._device is None:
            return False
        async with self._lock:
            if await asyncio.to_thread(signature, vault.path) == self._on_disk:
                return False
            data = await vault.read()
            if data is None:
                return False
            device = OlmDevice.load(data, vault.pickle_key)
            if device.device_id != self._device.device_id:
                return False
            self._device = device
            self._on_disk = await asyncio.to_thread(signature, vault.path)
            return True

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
            task = asyncio.create_task(self._top_up())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(_log_failure)

    async def _top_up(self) -> KeyCounts:
        async with self._client.e2e_guard():
            return await self.publish()

    def close(self) -> None:
        """The client is closing: a top-up under way is dropped (the next opening asks)."""
        for task in list(self._tasks):
            task.cancel()

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
                self._known[device.device_id] = device
                out.append(device)
        return out

    # -- sending ----------------------------------------------------------------------------
    async def send(self, user_ids: list[int], body: bytes, *,
                   written_ms: int | None = None) -> int:
        """``body`` encrypted for every device of these users (this user's other devices
        included when named); returns how many devices it went to. ``written_ms``: the
        time of what it carries, as :meth:`first_sent_ms` remembers it (None: now)."""
        own = self._opened().device_id
        targets = [d for d in await self.devices_of(user_ids) if d.device_id != own]
        return await self.send_to_devices(targets, body, written_ms=written_ms)

    async def devices_of(self, user_ids: list[int]) -> list[DeviceKeys]:
        """:meth:`query`, one question for concurrent callers: sends that start while the
        server is being asked for these users' devices share its answer (a burst asks
        once), and a send that starts after a device joined always reaches it."""
        key = tuple(sorted(set(user_ids)))
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self.query(list(key)))
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        return await asyncio.shield(asking)

    async def send_to_devices(self, targets: list[DeviceKeys], body: bytes, *,
                              written_ms: int | None = None) -> int:
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
            now_ms = int(time.time() * 1000) if written_ms is None else written_ms
            for target in targets:
                if device.has_session(target.identity.curve25519):
                    device.note_sent(target.device_id, now_ms)
                    kind, ciphertext = device.encrypt(target.identity, body)
                    envelopes.append(Envelope(device_id=target.device_id, type=kind,
                                              ciphertext=ciphertext))
            snapshot = self._snapshot()
        # The ratchets moved on: on disk before anything leaves, never reuse a message key.
        await self._flush(snapshot)
        sent = 0
        for start in range(0, len(envelopes), MAX_ENVELOPES_PER_CALL):
            answer: Affected = await self._client.call("envelopes.send", m.SendEnvelopes(
                envelopes=envelopes[start:start + MAX_ENVELOPES_PER_CALL]))
            sent += answer.count
        return sent

    # -- receiving --------------------------------------------------------------------------
    async def receive(self) -> list[DeviceMessage]:
        """Every envelope waiting in this device's inbox, decrypted (or with the reason it
        could not be), then acknowledged. (What a device runs is :mod:`.inbox`, which hands
        each to its handler before acknowledging; this is the bare form.)"""
        stream = device_stream(self._opened().device_id)
        out: list[DeviceMessage] = []
        seq = 0
        while True:
            page = await self._client.call("updates.get_stream_difference",
                                           m.GetStreamDifference(stream=stream, seq=seq))
            items = [read_item(item) for item in page.items]
            async with self.decrypting([(i.seq, i.body) for i in items
                                        if isinstance(i.body, Delivered)],
                                       page.seq) as opened:
                out += opened
            seq = page.seq
            if not page.more:
                break
        if seq:
            await self._client.call("updates.ack_stream", m.AckStream(stream=stream, seq=seq))
        return out

    @contextlib.asynccontextmanager
    async def decrypting(self, envelopes: list[tuple[int, Delivered]], reached: int = 0
                         ) -> AsyncIterator[list[DeviceMessage]]:
        """The envelopes decrypted, for the body of the ``async with`` to keep durably; the
        advanced sessions are saved only after it (a crash in between decrypts them again
        from the older state, never loses a message whose keys the ratchet dropped). The
        account and sessions stay locked meanwhile: the body must not send. ``reached``: the
        inbox position read up to (kept with the sessions: see :attr:`inbox_seq`)."""
        unknown = sorted({e.sender_id for _, e in envelopes
                          if e.sender_device not in self._identities})
        if unknown:
            await self.query(unknown)
        started = False
        out = []
        async with self._lock:
            device = self._opened()
            vault = self.vault
            before = device.dump(vault.pickle_key)
            done = device.inbox_seq
            for seq, envelope in envelopes:
                if seq <= done:
                    continue  # kept before; only its acknowledgement was lost
                sender = self._identities.get(envelope.sender_device)
                body, error = None, None
                if device.already_read(envelope.ciphertext):
                    out.append(DeviceMessage(envelope.sender_id, envelope.sender_device, seq,
                                             None, "a copy of an envelope already read",
                                             duplicate=True))
                    continue
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
            device.inbox_seq = max([done, reached, *(seq for seq, _ in envelopes)])
            try:
                yield out
            except BaseException:
                # Not kept: the sessions go back to before, so that reading again decrypts.
                self._device = OlmDevice.load(before, vault.pickle_key)
                raise
            await self._save()
        if started:  # a one-time key of ours was used up
            self.top_up_soon()

    @property
    def created_ms(self) -> int:
        """When this device's keys were made (ms since the epoch; 0: not known)."""
        return self._opened().created_ms

    def first_sent_ms(self, device_id: int) -> int | None:
        """The time of the earliest message this device encrypted for ``device_id`` (ms;
        None: never): nothing from before was for it, nor is sent to it again."""
        return self._opened().first_sent.get(device_id)

    @property
    def inbox_seq(self) -> int:
        """The last position of this device's inbox whose envelopes were decrypted and kept
        (saved with the sessions; the server deleted nothing after it but by retention)."""
        return self._opened().inbox_seq

    def known(self, device_id: int) -> DeviceKeys | None:
        """The identity of a device met before (queried), to reply to it alone."""
        return self._known.get(device_id)

    async def renew(self, target: DeviceKeys, body: bytes) -> int:
        """A fresh Olm session with ``target`` (a one-time key claimed now), ``body`` its
        first message: a device that could not decrypt what ``target`` sent asks it so to
        use the new session, which the peer then takes as its newest."""
        async with self._lock:
            device = self._opened()
            for claimed in await self._client.call("keys.claim", m.ClaimKeys(
                    device_ids=[target.device_id])):
                device.start_session(claimed)
            await self._save()
        return await self.send_to_devices([target], body)


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("topping up one-time keys failed: %s", task.exception())
