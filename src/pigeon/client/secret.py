"""``client.secret``: one-to-one secret chats, end to end encrypted on every device of both
people, with self-destruct timers (issue 9, deliverables 3 and 5).

A chat is set up by :meth:`Secret.start`, which sends a ``SecretOpen`` over Olm to every
device of the peer and to the starter's own other devices; each message
(:meth:`Secret.send`) is encrypted once per device of both people. Every device keeps its
own history (:mod:`.secret_store`, sealed under the passphrase's key) and reads its inbox
through :mod:`.inbox`; a device that joins later sees nothing from before. There is one
secret chat per pair of people: if both start one at the same moment, both sides keep the
one with the lower id.

Timers: a message's ``ttl`` (its own, or the chat's default when sent) counts from when it
is shown: on the recipient's device when ``pigeon receive`` prints it or the application
calls :meth:`Secret.mark_shown` (which sends a ``SecretShown`` receipt), on the sender's
devices when that receipt arrives. At expiry the text is destroyed in the store (a sweep at
open, on every read, and by a timer); times are this device's clock (``clock``,
injectable: tests need no sleeps).

Errors: :class:`NoSuchSecretChat`, :class:`NoSecretDevices`, :class:`UnverifiedDevices`
(raised by ``require_verified`` when set: ``client.trust.require_verified_users``,
``--only-verified``), WrongPassphrase (:mod:`pigeon.crypto.vault`), and ``TTL_INVALID``
for a timer out of bounds. Envelopes that cannot be decrypted come to
:meth:`Client.updates` as :class:`Undecryptable`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from pigeon.crypto.files import FileDecryptError, FileKey, decrypt_file, encrypt_file
from pigeon.crypto.olm import CannotDecrypt
from pigeon.media.sniff import HEAD_BYTES, sniff
from pigeon.crypto.payloads import (
    MAX_IDS_PER_PAYLOAD, Payload, Renew, SecretFile, SecretOpen, SecretShown, SecretText,
    SecretTtl, encode_payload,
)
from pigeon.crypto.vault import WrongPassphrase
from pigeon.protocol import limits
from pigeon.protocol.errors import Conflict, InvalidArgument, NotFound

from .devices import DeviceMessage
from .inbox import Incoming
from .link import ConnectionLost
from .media import Progress, file_sha256
from .secret_store import FILE, SecretStore, StoredChat, StoredMessage
from .trust import UnverifiedDevices

if TYPE_CHECKING:
    from .client import Client

__all__ = ["CannotDecrypt", "HistoryReloaded", "NoSecretDevices", "NoSuchSecretChat", "Secret",
           "SecretChat", "SecretMessage", "Undecryptable", "UnverifiedDevices",
           "WrongPassphrase", "check_ttl"]

log = logging.getLogger("pigeon.client.secret")

MIN_TTL, MAX_TTL = 1, 7 * 24 * 3600
SWEEP_AT_MOST = 60.0  # seconds the expiry timer sleeps at most (a clock that jumps)
MAX_SECRET_CHAT_ID = 2**63 - 1
SEND_ATTEMPTS = 5  # a send cut by a lost connection is encrypted and sent again
#: messages a device sends again, at most, to a device of the chat that could not read them
RESEND_AT_MOST = 100


class NoSuchSecretChat(NotFound):
    code = "SECRET_CHAT_NOT_FOUND"


class NoSecretDevices(NotFound):
    """The peer has no device with end-to-end keys: nobody could read the chat."""

    code = "DEVICE_NOT_FOUND"


class SecretMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A secret message, as history lists it and :meth:`Client.updates` yields it."""

    chat_id: int
    message_id: str
    sender_id: int
    sender_device: int
    text: str
    sent_at: int  # milliseconds since the epoch, as the sender's device said
    ttl: int | None = None
    outgoing: bool = False
    expires_at: float | None = None  # seconds since the epoch; None: not counting down
    file: SecretFile | None = None  # a file (``text`` is its caption): download_file


class SecretChat(msgspec.Struct, frozen=True, kw_only=True):
    chat_id: int
    peer_id: int
    ttl: int | None
    messages: int


class HistoryReloaded(msgspec.Struct, frozen=True):
    """Another process using this profile wrote the secret history (it may have taken
    messages from the inbox): :meth:`Secret.unreported` may hold new ones."""


class Undecryptable(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope this device could not decrypt: reported, never dropped. The device
    already asked the sender's device for a fresh session."""

    sender_id: int
    sender_device: int
    error: str


def check_ttl(ttl: int | None) -> int | None:
    if ttl is not None and not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidArgument(f"a self-destruct timer is from 1 second to 1 week; {ttl} "
                              "seconds is not", code="TTL_INVALID")
    return ttl


def _sniff(path: Path) -> str:
    """The file's type by its first bytes (the server sees only ciphertext)."""
    with path.open("rb") as f:
        return sniff(f.read(HEAD_BYTES))


def _message(chat: StoredChat, msg: StoredMessage) -> SecretMessage:
    assert msg.text is not None
    return SecretMessage(chat_id=chat.chat_id, message_id=msg.message_id,
                         sender_id=msg.sender_id, sender_device=msg.sender_device,
                         text=msg.text, sent_at=msg.sent_at, ttl=msg.ttl,
                         outgoing=msg.outgoing, expires_at=msg.expires_at, file=msg.file)


class Secret:
    def __init__(self, client: Client, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self.clock = clock
        self._store: SecretStore | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: verification installs a check here: ``await require_verified(user_ids)`` raises
        #: UnverifiedDevices to refuse (None: every device with valid keys is used)
        self.require_verified: Callable[[list[int]], Awaitable[None]] | None = None

    # -- opening ------------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._store is not None

    async def open(self, passphrase: bytes | str | None = None) -> None:
        """Unlock this device's keys (if not yet) and its secret history; WrongPassphrase."""
        if self._store is not None:
            return
        devices = self._client.devices
        if not devices.is_open:
            if passphrase is None:
                raise WrongPassphrase("a passphrase is needed to open this device's keys")
            await devices.open(passphrase)
        self._store = await self._open_store()
        inbox = self._client.inbox
        inbox.on(SecretOpen, self._on_open)
        inbox.on(SecretText, self._on_text)
        inbox.on(SecretShown, self._on_shown)
        inbox.on(SecretTtl, self._on_ttl)
        inbox.on(Renew, self._on_renew)
        inbox.renewal_since = self._missing_since
        inbox.on_undecryptable(self._on_undecryptable)
        inbox.before_ack(self._commit)
        await self.sweep()
        self._timer = asyncio.create_task(self._expire_on_time())

    async def signed_in(self) -> None:
        """This client became another device (a new login): it starts a history of its own
        (a device sees nothing from before it joined), kept in the profile's store file."""
        if self._store is None or not self._client.devices.is_open:
            return
        await self._store.commit()
        self._store = await self._open_store()

    async def _open_store(self) -> SecretStore:
        devices = self._client.devices
        directory = self._client.profile.directory
        vault = devices.vault.sibling(directory / FILE if directory is not None else None)
        return await SecretStore.open(vault, devices.device_id)

    async def _commit(self) -> None:
        await self._opened().commit()

    async def reload_if_changed(self) -> bool:
        """Take the history from disk if another process wrote it since (see
        :meth:`Devices.reload_if_changed`); what this one has not committed is kept first."""
        store = self._opened()
        await store.commit()
        if not await store.changed_on_disk():
            return False
        self._store = await self._open_store()
        self._client.emit(HistoryReloaded())
        return True

    def _opened(self) -> SecretStore:
        if self._store is None:
            raise RuntimeError("open secret chats first: await client.secret.open(passphrase)")
        return self._store

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._store is not None:
            await self._store.commit()

    async def receive(self) -> int:
        """Read this device's inbox now (secret messages come to ``client.updates()``)."""
        self._opened()
        return await self._client.inbox.receive()

    def follow(self) -> None:
        """Process secret messages as they are pushed, while connected."""
        self._opened()
        self._client.inbox.follow()

    # -- chats --------------------------------------------------------------------------------
    def chats(self) -> list[SecretChat]:
        return [SecretChat(chat_id=c.chat_id, peer_id=c.peer_id, ttl=c.ttl,
                           messages=sum(m.text is not None for m in c.messages))
                for c in self._opened().chats()]

    def chat_with(self, user_id: int) -> int | None:
        chat = self._opened().by_peer(user_id)
        return None if chat is None else chat.chat_id

    def peer_of(self, chat_id: int) -> int:
        """Whom secret chat ``chat_id`` is with (NoSuchSecretChat)."""
        return self._chat(chat_id).peer_id

    def _chat(self, chat_id: int) -> StoredChat:
        chat = self._opened().by_id(chat_id)
        if chat is None:
            raise NoSuchSecretChat(f"no secret chat secret:{chat_id} on this device")
        return chat

    @property
    def _me(self) -> int:
        user_id = self._client.profile.user_id
        assert user_id is not None
        return user_id

    async def start(self, user_id: int) -> int:
        """The secret chat with ``user_id`` (set up on every device of both of you if there
        is none yet); returns its id."""
        store = self._opened()
        if user_id == self._me:
            raise Conflict("a secret chat is with someone else", code="PEER_IS_SELF")
        held = store.by_peer(user_id)
        if held is not None:
            return held.chat_id
        chat = store.add_chat(StoredChat(chat_id=secrets.randbelow(MAX_SECRET_CHAT_ID) + 1,
                                         peer_id=user_id, starter=self._me,
                                         created_at=self.clock()))
        reached = await self._send(chat, SecretOpen(chat_id=chat.chat_id, starter=self._me,
                                                    peer=user_id, ttl=chat.ttl))
        if not reached:
            raise NoSecretDevices(f"user {user_id} has no device that can read a secret "
                                  "chat yet (none has published keys)")
        return chat.chat_id

    async def set_ttl(self, chat_id: int, ttl: int | None) -> None:
        """The chat's default timer for messages sent from now on (None: off)."""
        chat = self._chat(chat_id)
        self._opened().set_ttl(chat, check_ttl(ttl))
        await self._send(chat, SecretTtl(chat_id=chat.chat_id, ttl=ttl))

    async def send(self, chat_id: int | None, text: str, *, ttl: int | None = None,
                   user_id: int | None = None, file: SecretFile | None = None) -> SecretMessage:
        """Send ``text`` to secret chat ``chat_id`` (or, with ``user_id``, to the chat with
        that user, started if need be), and keep it in this device's history. With ``file``
        (see :meth:`send_file`) the text is its caption and may be empty."""
        if (not text and file is None) or len(text) > limits.MAX_TEXT_CHARS:
            raise InvalidArgument(f"a message has 1 to {limits.MAX_TEXT_CHARS} characters",
                                  code="TEXT_INVALID")
        if chat_id is None:
            if user_id is None:
                raise InvalidArgument("name a secret chat or a user")
            chat_id = await self.start(user_id)
        chat = self._chat(chat_id)
        ttl = check_ttl(ttl if ttl is not None else chat.ttl)
        store = self._opened()
        record = StoredMessage(message_id=secrets.token_hex(16), sender_id=self._me,
                               sender_device=self._client.devices.device_id,
                               sent_at=int(self.clock() * 1000), text=text, ttl=ttl,
                               outgoing=True, file=file)
        store.add_message(chat, record)
        # Kept here and sent at once; it returns when both are done (a crash before that
        # may lose it from this device's history, never make it read twice elsewhere).
        await asyncio.gather(store.commit(), self._send(chat, SecretText(
            chat_id=chat.chat_id, peer=chat.peer_id, message_id=record.message_id, text=text,
            sent_at=record.sent_at, ttl=ttl, file=file)))
        return _message(chat, record)

    async def send_file(self, chat_id: int | None, path: Path, caption: str = "", *,
                        ttl: int | None = None, user_id: int | None = None,
                        progress: Progress | None = None) -> SecretMessage:
        """Encrypt ``path`` on this device (a fresh AES-256-GCM key), upload the ciphertext
        readable by the chat's peer, and send its id, key and hash in an end-to-end
        encrypted message whose text is ``caption``. The server stores only ciphertext."""
        if chat_id is None:
            if user_id is None:
                raise InvalidArgument("name a secret chat or a user")
            chat_id = await self.start(user_id)
        chat = self._chat(chat_id)
        directory = self._client.profile.directory
        with tempfile.TemporaryDirectory(dir=directory, prefix="sealing-") as scratch:
            sealed = Path(scratch) / "file.sealed"
            key = await asyncio.to_thread(encrypt_file, path, sealed)
            media = await self._client.files.upload(sealed, kind="document", progress=progress,
                                                    readers=[chat.peer_id])
        file = SecretFile(file_id=media.file_id, name=path.name[:255], size=key.size,
                          key=key.key, nonce=key.nonce, sha256=key.sha256,
                          mime=await asyncio.to_thread(_sniff, path))
        return await self.send(chat.chat_id, caption, ttl=ttl, file=file)

    def file(self, file_id: str) -> SecretFile | None:
        """The key of a secret chat's file on this device (None: no such file here, or its
        message self-destructed)."""
        for chat in self._opened().chats():
            for message in chat.messages:
                if message.file is not None and message.file.file_id == file_id:
                    return message.file
        return None

    async def download_file(self, file: SecretFile, out: Path,
                            progress: Progress | None = None,
                            total: Callable[[int], None] | None = None) -> Path:
        """Download a secret chat's file (the ciphertext, resumable: ``OUT.sealed.part``),
        check it against the hash its message carried, and decrypt it to ``out``."""
        sealed = out.with_name(out.name + ".sealed")
        await self._client.files.download(file.file_id, sealed, progress=progress, total=total)
        try:
            if await asyncio.to_thread(file_sha256, sealed) != file.sha256:
                raise FileDecryptError("the file on the server is not the one sent")
            await asyncio.to_thread(decrypt_file, sealed, out, FileKey(
                key=file.key, nonce=file.nonce, sha256=file.sha256, size=file.size))
        finally:
            await asyncio.to_thread(sealed.unlink, missing_ok=True)
        return out

    async def _send(self, chat: StoredChat, payload: Payload) -> int:
        users = [chat.peer_id, self._me]
        if self.require_verified is not None:
            await self.require_verified(users)
        body = encode_payload(payload)
        # What a device may be sent again after a renewal starts at the first message it
        # was sent, by the message's own time.
        written = (payload.sent_at if isinstance(payload, SecretText)
                   else int(self.clock() * 1000))
        for attempt in range(SEND_ATTEMPTS):
            try:
                return await self._client.devices.send(users, body, written_ms=written)
            except ConnectionLost:
                # envelopes.send is not retried by the SDK (a copy sent twice would not
                # decrypt twice): encrypted afresh, a copy that did arrive is deduplicated
                # by the message's id on every device.
                if attempt == SEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def history(self, chat_id: int) -> list[SecretMessage]:
        """This device's messages of the chat, oldest first, without those destroyed."""
        chat = self._chat(chat_id)
        await self.sweep()
        return [_message(chat, m) for m in chat.messages if m.text is not None]

    def unreported(self) -> list[SecretMessage]:
        """Messages that came in (from the peer, or copies from my other devices) and were
        not yet reported with :meth:`mark_reported`, oldest first per chat; what `pigeon
        receive` prints, whichever command took them from the inbox."""
        return [_message(chat, m) for chat in self._opened().chats()
                for m in chat.messages
                if not m.reported and m.text is not None
                and m.sender_device != self._client.devices.device_id]

    async def mark_reported(self, messages: list[SecretMessage]) -> None:
        store = self._opened()
        wanted = {(m.chat_id, m.message_id) for m in messages}
        for chat in store.chats():
            for record in chat.messages:
                if (chat.chat_id, record.message_id) in wanted:
                    store.mark_reported(chat, record)
        await store.commit()

    async def mark_shown(self, chat_id: int, message_ids: list[str] | None = None) -> list[str]:
        """The chat's messages from the peer (those named, or all) were shown: their
        countdowns start here, and on the sender's devices when the receipt arrives."""
        chat = self._chat(chat_id)
        store = self._opened()
        now = self.clock()
        wanted = None if message_ids is None else set(message_ids)
        shown = [m.message_id for m in chat.messages
                 if not m.outgoing and (wanted is None or m.message_id in wanted)
                 and store.start_countdown(chat, m, now)]
        if not shown:
            return []
        await store.commit()
        self._wake.set()
        for start in range(0, len(shown), MAX_IDS_PER_PAYLOAD):
            await self._send(chat, SecretShown(chat_id=chat.chat_id,
                                               message_ids=shown[start:start + MAX_IDS_PER_PAYLOAD],
                                               at=int(now * 1000)))
        return shown

    # -- expiry -------------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Destroy what expired by ``clock()``; returns how many messages."""
        store = self._opened()
        gone = store.sweep(self.clock())
        if gone:
            await store.commit()
        return gone

    async def _expire_on_time(self) -> None:
        while True:
            store = self._opened()
            due = store.next_expiry()
            wait = SWEEP_AT_MOST if due is None else min(max(due - self.clock(), 0.05),
                                                         SWEEP_AT_MOST)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            try:
                async with self._client.e2e_guard():
                    await self.sweep()
            except Exception as exc:  # a full disk: try again at the next turn
                log.warning("destroying expired secret messages failed: %s", exc)

    # -- incoming -----------------------------------------------------------------------------
    def _peer_of(self, message: Incoming, named: int) -> int | None:
        """Whom the chat is with, seen from here: the sender, or (a copy from one of my own
        devices) the person it names."""
        if message.sender_id != self._me:
            return message.sender_id
        return named or None

    async def _on_open(self, message: Incoming) -> None:
        payload: SecretOpen = message.payload
        if message.sender_id != self._me and (payload.peer != self._me or payload.starter
                                              not in (message.sender_id, self._me)):
            log.warning("device %d sent a secret chat opening naming others: ignored",
                        message.sender_device)
            return
        peer = self._peer_of(message, payload.peer)
        if peer is None or peer == self._me:
            return
        self._opened().add_chat(StoredChat(chat_id=payload.chat_id, peer_id=peer,
                                           starter=payload.starter, created_at=self.clock(),
                                           ttl=payload.ttl))

    async def _on_text(self, message: Incoming) -> None:
        payload: SecretText = message.payload
        peer = self._peer_of(message, payload.peer)
        if peer is None or peer == self._me:
            return
        store = self._opened()
        chat = store.add_chat(StoredChat(chat_id=payload.chat_id, peer_id=peer,
                                         starter=message.sender_id, created_at=self.clock()))
        record = StoredMessage(message_id=payload.message_id, sender_id=message.sender_id,
                               sender_device=message.sender_device, sent_at=payload.sent_at,
                               text=payload.text, ttl=payload.ttl,
                               outgoing=message.sender_id == self._me, file=payload.file)
        if store.add_message(chat, record):
            self._client.emit(_message(chat, record))
        else:
            log.info("secret message %s read again: ignored", payload.message_id)

    async def _on_shown(self, message: Incoming) -> None:
        payload: SecretShown = message.payload
        store = self._opened()
        chat = store.by_id(payload.chat_id)
        if chat is None:
            return
        # The peer's receipt counts for what I sent; my own device's, for what I received.
        mine = message.sender_id != self._me
        wanted = set(payload.message_ids)
        now = self.clock()
        for record in chat.messages:
            if record.message_id in wanted and record.outgoing == mine:
                store.start_countdown(chat, record, now)
        self._wake.set()

    async def _on_ttl(self, message: Incoming) -> None:
        payload: SecretTtl = message.payload
        store = self._opened()
        chat = store.by_id(payload.chat_id)
        if chat is not None and (message.sender_id in (self._me, chat.peer_id)):
            store.set_ttl(chat, payload.ttl)

    def _missing_since(self, device_id: int) -> int:
        """From when this device misses what ``device_id`` sent: after the newest message
        it holds from it, and never before this device existed (a device that joined
        later sees nothing from before)."""
        held = [m.sent_at for chat in self._opened().chats() for m in chat.messages
                if m.sender_device == device_id]
        born = self._client.devices.created_ms
        return max([born, *held]) if born or held else int(self.clock() * 1000)

    async def _on_renew(self, message: Incoming) -> None:
        """A device of a peer (or mine) lost its session with this one: the new session is
        already the newest; tell that device again which chat it shares with us, and send
        it again what it missed from this device (that this device still holds)."""
        payload: Renew = message.payload
        store = self._opened()
        peer = message.sender_id
        chats = [c for c in store.chats() if peer in (c.peer_id, self._me)]
        target = self._client.devices.known(message.sender_device)
        if target is None or not chats:
            return
        devices, own = self._client.devices, self._client.devices.device_id
        for chat in chats:
            # ``peer`` is the other person as this side sees it (as in :meth:`start`): a
            # peer's device and one of mine read it alike.
            bodies = [encode_payload(SecretOpen(chat_id=chat.chat_id, starter=chat.starter,
                                                peer=chat.peer_id, ttl=chat.ttl))]
            first = devices.first_sent_ms(target.device_id)
            if payload.since is not None and first is not None:
                # Never what was sent before this device first wrote to that one: a device
                # that joined later (or one an attacker logged in) gets nothing from before,
                # whatever ``since`` it names.
                since = max(payload.since, first - 1)
                missed = [m for m in chat.messages if m.sender_device == own
                          and m.text is not None and m.sent_at > since]
                bodies += [encode_payload(SecretText(
                    chat_id=chat.chat_id, peer=chat.peer_id, message_id=m.message_id,
                    text=m.text, sent_at=m.sent_at, ttl=m.ttl, file=m.file))
                    for m in missed[-RESEND_AT_MOST:] if m.text is not None]
            for body in bodies:
                message.later(functools.partial(devices.send_to_devices, [target], body))

    async def _on_undecryptable(self, message: DeviceMessage) -> None:
        self._client.emit(Undecryptable(sender_id=message.sender_id,
                                        sender_device=message.sender_device,
                                        error=message.error or "cannot decrypt"))
