"""This device's secret chats and their history, encrypted at rest.

One file, ``secret-chats.vault`` in the profile directory: a log of records, each sealed
(AES-256-GCM, a fresh nonce each) under the key the passphrase derives for this device's
keys (:meth:`pigeon.crypto.vault.Vault.sibling`): no plaintext of a secret message is ever
written in the clear. A change is appended (a chat, or a message as it now stands) and
:meth:`SecretStore.commit` writes what changed since the last one in one append and one
fsync: once per batch of the inbox, shared by concurrent sends, never once per message
nor the whole history each time.

The log is rewritten whole (atomically: a new file renamed over it, one record holding the
state) when a message self-destructs, so that its plaintext leaves the file at once, and
when it has grown to many records. A record cut short by a crash while being appended was
never committed (its commit had not returned): it is dropped when the log is read.

A message that self-destructed leaves a tombstone: its id (so that a copy replayed later is
not taken again) and nothing of its text. A store written by another device (the profile
logged in again: a new device) is not this device's history: it starts empty, as a device
that joins later sees nothing from before.

File: ``MAGIC | salt (16) | records``; a record is ``length (4, big-endian) | nonce (12) |
ciphertext + tag``, the magic and salt its associated data.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from pigeon.client.profile import write_private
from pigeon.crypto.payloads import SecretFile
from pigeon.crypto.vault import Vault, VaultDamaged, WrongPassphrase, signature

log = logging.getLogger("pigeon.client.secret_store")

FILE = "secret-chats.vault"
MAGIC = b"PIGEON-SECRETS-1\n"
LENGTH_BYTES = 4
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a record longer than this is damage, not data
#: records the log may hold beyond the chats and messages it describes before it is
#: rewritten whole (each countdown and each merge of chats appends one)
COMPACT_AFTER = 10_000


class StoredMessage(msgspec.Struct, kw_only=True):
    message_id: str
    sender_id: int
    sender_device: int
    sent_at: int  # milliseconds, the sender's clock
    text: str | None  # None: self-destructed (a tombstone)
    file: SecretFile | None = None  # a file's place and key (gone with the text)
    ttl: int | None = None
    outgoing: bool = False
    shown_at: float | None = None  # seconds, this device's clock: the countdown's start
    expires_at: float | None = None
    # Handed to the application's reader of new messages (`pigeon receive`): a message a
    # command such as `send` took from the inbox waits for the next `receive`.
    reported: bool = False


class StoredChat(msgspec.Struct, kw_only=True):
    chat_id: int
    peer_id: int
    starter: int
    created_at: float
    ttl: int | None = None
    messages: list[StoredMessage] = []


class StoreState(msgspec.Struct):
    device_id: int
    chats: list[StoredChat] = []


class Record(msgspec.Struct, tag_field="r"):
    """One entry of the log."""


class StateRecord(Record, tag="state"):
    state: StoreState


class ChatRecord(Record, tag="chat"):
    """A chat as it now stands (its messages apart)."""

    chat: StoredChat


class MessageRecord(Record, tag="msg"):
    """A message of the chat with ``peer_id``, as it now stands (added, counting down, or
    a tombstone)."""

    peer_id: int
    message: StoredMessage


AnyRecord = StateRecord | ChatRecord | MessageRecord
_decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(AnyRecord)
_encoder = msgspec.msgpack.Encoder()


class SecretStore:
    def __init__(self, vault: Vault, state: StoreState, records: int = 0,
                 rewrite: bool = False) -> None:
        self._vault = vault
        self._path = vault.path
        self._context = MAGIC + vault.salt
        self._state = state
        self._by_peer = {chat.peer_id: chat for chat in state.chats}
        self._ids: dict[int, dict[str, StoredMessage]] = {
            chat.peer_id: {msg.message_id: msg for msg in chat.messages}
            for chat in state.chats}
        self._lock = asyncio.Lock()
        self._changed: list[Record] = []
        self._records = records  # in the file now
        self._rewrite = rewrite  # the next commit writes the whole state anew
        self._on_disk = signature(self._path)  # the file as last read or written

    async def changed_on_disk(self) -> bool:
        """Whether another process wrote the file since this one read or wrote it."""
        return await asyncio.to_thread(signature, self._path) != self._on_disk

    @property
    def dirty(self) -> bool:
        return bool(self._changed) or self._rewrite

    @classmethod
    async def open(cls, vault: Vault, device_id: int) -> SecretStore:
        """This device's store (empty if there is none, or it is another device's).
        WrongPassphrase if it was sealed under another key; VaultDamaged if not a store."""
        raw = await asyncio.to_thread(_read, vault.path)
        if raw is None:
            return cls(vault, StoreState(device_id))
        context = MAGIC + vault.salt
        if not raw.startswith(MAGIC) or len(raw) < len(context):
            raise VaultDamaged(f"{vault.path} is not a Pigeon secret-chat store")
        if raw[:len(context)] != context:
            raise WrongPassphrase(f"{vault.path} was sealed under another passphrase")
        state, records, torn = StoreState(device_id), 0, False
        chats: dict[int, StoredChat] = {}
        where: dict[tuple[int, str], int] = {}  # (peer, message id) -> its index in the chat
        offset = len(context)
        while offset < len(raw):
            length = int.from_bytes(raw[offset:offset + LENGTH_BYTES], "big")
            end = offset + LENGTH_BYTES + length
            if end > len(raw) or length > MAX_RECORD_BYTES:
                torn = True
                break
            try:
                data = vault.open_record(raw[offset + LENGTH_BYTES:end], context)
            except WrongPassphrase:
                if records == 0:
                    raise
                torn = True  # a tail that was being written when the device stopped
                break
            record = _decoder.decode(data)
            records += 1
            offset = end
            if isinstance(record, StateRecord):
                state = record.state
                chats = {chat.peer_id: chat for chat in state.chats}
                where = {(chat.peer_id, msg.message_id): i for chat in state.chats
                         for i, msg in enumerate(chat.messages)}
            elif isinstance(record, ChatRecord):
                _apply_chat(state, chats, record.chat)
            elif (chat := chats.get(record.peer_id)) is not None:
                key = (record.peer_id, record.message.message_id)
                if key in where:
                    chat.messages[where[key]] = record.message
                else:
                    where[key] = len(chat.messages)
                    chat.messages.append(record.message)
        if torn:
            log.warning("%s ends in a record cut short: dropped (never committed)", vault.path)
        if state.device_id != device_id:
            return cls(vault, StoreState(device_id), rewrite=True)
        return cls(vault, state, records, rewrite=torn)

    async def commit(self) -> None:
        """Write what changed to disk: appended (one write, one fsync), or the whole state
        anew when something self-destructed or the log grew long."""
        async with self._lock:
            if not self.dirty:
                return
            changed, self._changed = self._changed, []
            rewrite = self._rewrite or self._records + len(changed) > COMPACT_AFTER + sum(
                1 + len(chat.messages) for chat in self._state.chats)
            self._rewrite = False
            try:
                if rewrite:
                    await self._write_all()
                else:
                    await self._append(changed)
            except BaseException:
                self._changed = changed + self._changed
                self._rewrite |= rewrite
                raise
            self._on_disk = await asyncio.to_thread(signature, self._path)

    def _seal(self, record: Record) -> bytes:
        sealed = self._vault.seal_record(_encoder.encode(record), self._context)
        return len(sealed).to_bytes(LENGTH_BYTES, "big") + sealed

    async def _write_all(self) -> None:
        data = _encoder.encode(StateRecord(self._state))  # on the loop: a consistent state
        if self._path is not None:
            await asyncio.to_thread(self._write_sealed, self._path, data)
        self._records = 1

    def _write_sealed(self, path: Path, data: bytes) -> None:
        sealed = self._vault.seal_record(data, self._context)
        write_private(path, self._context + len(sealed).to_bytes(LENGTH_BYTES, "big") + sealed)

    async def _append(self, changed: list[Record]) -> None:
        if self._path is None:
            return
        if self._records == 0:
            await self._write_all()  # a new file: written whole, private from the start
            return
        data = b"".join(self._seal(record) for record in changed)
        await asyncio.to_thread(_append, self._path, data)
        self._records += len(changed)

    # -- chats --------------------------------------------------------------------------------
    def chats(self) -> list[StoredChat]:
        return list(self._state.chats)

    def by_peer(self, peer_id: int) -> StoredChat | None:
        return self._by_peer.get(peer_id)

    def by_id(self, chat_id: int) -> StoredChat | None:
        return next((c for c in self._state.chats if c.chat_id == chat_id), None)

    def _chat_changed(self, chat: StoredChat) -> None:
        self._changed.append(ChatRecord(msgspec.structs.replace(chat, messages=[])))

    def _message_changed(self, chat: StoredChat, message: StoredMessage) -> None:
        self._changed.append(MessageRecord(chat.peer_id, msgspec.structs.replace(message)))

    def add_chat(self, chat: StoredChat) -> StoredChat:
        """Keep ``chat``; one chat per peer: if both people started one at once, the one
        with the lower id is kept by both sides (and the other's messages join it)."""
        held = self._by_peer.get(chat.peer_id)
        if held is not None:
            if chat.chat_id < held.chat_id:
                held.chat_id = chat.chat_id
                self._chat_changed(held)
            return held
        self._state.chats.append(chat)
        self._by_peer[chat.peer_id] = chat
        self._ids[chat.peer_id] = {m.message_id: m for m in chat.messages}
        self._chat_changed(chat)
        for message in chat.messages:
            self._message_changed(chat, message)
        return chat

    def set_ttl(self, chat: StoredChat, ttl: int | None) -> None:
        chat.ttl = ttl
        self._chat_changed(chat)

    # -- messages -----------------------------------------------------------------------------
    def add_message(self, chat: StoredChat, message: StoredMessage) -> bool:
        """False if a message of this id is held already (a copy read twice, a replay)."""
        ids = self._ids[chat.peer_id]
        if message.message_id in ids:
            return False
        ids[message.message_id] = message
        chat.messages.append(message)
        self._message_changed(chat, message)
        return True

    def start_countdown(self, chat: StoredChat, message: StoredMessage, now: float) -> bool:
        if message.shown_at is not None or message.text is None:
            return False
        message.shown_at = now
        if message.ttl is not None:
            message.expires_at = now + message.ttl
        self._message_changed(chat, message)
        return True

    def mark_reported(self, chat: StoredChat, message: StoredMessage) -> None:
        if not message.reported:
            message.reported = True
            self._message_changed(chat, message)

    def sweep(self, now: float) -> int:
        """Destroy every message whose time is up; returns how many. Their plaintext leaves
        the file at the next commit, which rewrites it whole."""
        gone = 0
        for chat in self._state.chats:
            for message in chat.messages:
                if message.text is not None and message.expires_at is not None \
                        and message.expires_at <= now:
                    message.text = None
                    message.file = None
                    gone += 1
        if gone:
            self._rewrite = True
        return gone

    def next_expiry(self) -> float | None:
        times = [msg.expires_at for chat in self._state.chats for msg in chat.messages
                 if msg.text is not None and msg.expires_at is not None]
        return min(times, default=None)


def _apply_chat(state: StoreState, chats: dict[int, StoredChat], chat: StoredChat) -> None:
    held = chats.get(chat.peer_id)
    if held is None:
        chat = msgspec.structs.replace(chat, messages=[])
        state.chats.append(chat)
        chats[chat.peer_id] = chat
    else:
        held.chat_id, held.ttl = chat.chat_id, chat.ttl


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
