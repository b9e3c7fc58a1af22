"""This device's secret chats and their history, encrypted at rest.

One file, ``secret-chats.vault`` in the profile directory, sealed (AES-256-GCM) under the
key the passphrase derives for this device's keys (:meth:`pigeon.crypto.vault.Vault.sibling`):
no plaintext of a secret message is ever written in the clear. It is rewritten whole,
atomically, once per batch (:meth:`SecretStore.commit`), not once per message.

A message that self-destructed leaves a tombstone: its id (so that a copy replayed later is
not taken again) and nothing of its text. A store written by another device (the profile
logged in again: a new device) is not this device's history: it starts empty, as a device
that joins later sees nothing from before.
"""

from __future__ import annotations

import asyncio

import msgspec

from pigeon.crypto.vault import Vault

FILE = "secret-chats.vault"


class StoredMessage(msgspec.Struct, kw_only=True):
    message_id: str
    sender_id: int
    sender_device: int
    sent_at: int  # milliseconds, the sender's clock
    text: str | None  # None: self-destructed (a tombstone)
    ttl: int | None = None
    outgoing: bool = False
    shown_at: float | None = None  # seconds, this device's clock: the countdown's start
    expires_at: float | None = None


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


_decoder = msgspec.msgpack.Decoder(StoreState)
_encoder = msgspec.msgpack.Encoder()


class SecretStore:
    def __init__(self, vault: Vault, state: StoreState) -> None:
        self._vault = vault
        self._state = state
        self._by_peer = {chat.peer_id: chat for chat in state.chats}
        self._ids: dict[int, set[str]] = {
            chat.peer_id: {msg.message_id for msg in chat.messages} for chat in state.chats}
        self._lock = asyncio.Lock()
        self.dirty = False

    @classmethod
    async def open(cls, vault: Vault, device_id: int) -> SecretStore:
        data = await vault.load()
        state = _decoder.decode(data) if data is not None else None
        if state is None or state.device_id != device_id:
            return cls(vault, StoreState(device_id))
        return cls(vault, state)

    async def commit(self) -> None:
        """Write what changed to disk (atomically, one fsync)."""
        async with self._lock:
            if not self.dirty:
                return
            self.dirty = False
            data = _encoder.encode(self._state)
            try:
                await self._vault.save(data)
            except BaseException:
                self.dirty = True
                raise

    # -- chats --------------------------------------------------------------------------------
    def chats(self) -> list[StoredChat]:
        return list(self._state.chats)

    def by_peer(self, peer_id: int) -> StoredChat | None:
        return self._by_peer.get(peer_id)

    def by_id(self, chat_id: int) -> StoredChat | None:
        return next((c for c in self._state.chats if c.chat_id == chat_id), None)

    def add_chat(self, chat: StoredChat) -> StoredChat:
        """Keep ``chat``; one chat per peer: if both people started one at once, the one
        with the lower id is kept by both sides (and the other's messages join it)."""
        held = self._by_peer.get(chat.peer_id)
        if held is not None:
            if chat.chat_id < held.chat_id:
                held.chat_id = chat.chat_id
                self.dirty = True
            return held
        self._state.chats.append(chat)
        self._by_peer[chat.peer_id] = chat
        self._ids[chat.peer_id] = set()
        self.dirty = True
        return chat

    def set_ttl(self, chat: StoredChat, ttl: int | None) -> None:
        chat.ttl = ttl
        self.dirty = True

    # -- messages -----------------------------------------------------------------------------
    def add_message(self, chat: StoredChat, message: StoredMessage) -> bool:
        """False if a message of this id is held already (a copy read twice, a replay)."""
        ids = self._ids[chat.peer_id]
        if message.message_id in ids:
            return False
        ids.add(message.message_id)
        chat.messages.append(message)
        self.dirty = True
        return True

    def start_countdown(self, message: StoredMessage, now: float) -> bool:
        if message.shown_at is not None or message.text is None:
            return False
        message.shown_at = now
        if message.ttl is not None:
            message.expires_at = now + message.ttl
        self.dirty = True
        return True

    def sweep(self, now: float) -> int:
        """Destroy every message whose time is up; returns how many."""
        gone = 0
        for chat in self._state.chats:
            for message in chat.messages:
                if message.text is not None and message.expires_at is not None \
                        and message.expires_at <= now:
                    message.text = None
                    gone += 1
        self.dirty |= bool(gone)
        return gone

    def next_expiry(self) -> float | None:
        times = [msg.expires_at for chat in self._state.chats for msg in chat.messages
                 if msg.text is not None and msg.expires_at is not None]
        return min(times, default=None)
