"""``client.secret_groups``: end-to-end encrypted groups (issue 9, deliverable 4).

Each sending device has one Megolm outbound session per group (:mod:`pigeon.crypto.megolm`)
and shares its key over Olm (``client.devices.send_to_devices``) with every device of every
member, the sender's own other devices included, before the first message that uses it. A
new session starts when a member joins, leaves or is removed, when a member device is added
or removed, and after ``policy.max_messages`` messages or ``policy.max_age`` seconds.

The device's inbound sessions, its outbound ones and the messages waiting for a key are
kept in ``group-keys.vault`` beside the device's keys, sealed under the same passphrase
(:meth:`pigeon.crypto.vault.Vault.sibling`); a process that takes the profile's
``e2e.lock`` calls :meth:`SecretGroups.reload_if_changed`. Nothing is decrypted to disk: history is
the server's ciphertext, decrypted when read.

Key payloads arrive in the device's inbox. :meth:`SecretGroups.on_room_key`,
:meth:`SecretGroups.on_key_request` and :meth:`SecretGroups.on_renew` are handlers of the
shape ``client.inbox.on(Payload, handler)`` takes, and :meth:`SecretGroups.save` is its
``before_ack`` hook: :meth:`SecretGroups.attach` registers them on ``client.inbox`` (the
Client does), so group keys are taken whenever the inbox is read (``client.inbox.receive``
or following), beside 1:1 secret payloads. Keys that resolve pending messages raise a
:class:`GroupKeysArrived` event on ``client.updates()``.

A message whose key has not come is :data:`PENDING`: kept, and decrypted when the key
arrives (:meth:`SecretGroups.take_resolved`). After the inbox was read, the device asks for
the keys it still lacks (a RoomKeyRequest to the sending device and to its own other
devices), once per session; they re-share the key if it is entitled to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import msgspec

from pigeon.crypto import megolm
from pigeon.crypto.megolm import GroupState, Inbound, Outbound, Pending, RotationPolicy
from pigeon.crypto.olm import CannotDecrypt
from pigeon.crypto.vault import Vault, signature
from pigeon.crypto.payloads import (
    Renew,
    RoomKey,
    RoomKeyRequest,
    encode_payload,
)
from pigeon.domain.text import validate_text
from pigeon.protocol import limits
from pigeon.protocol.errors import InvalidArgument, NotFound
from pigeon.protocol.keys import DeviceKeys
from pigeon.protocol.types import Chat, Member, Message, SentMessage

if TYPE_CHECKING:
    from .client import Client

log = logging.getLogger("pigeon.client.secret_groups")

STATE_FILE = "group-keys.vault"
MEMBERS_PAGE = 100
#: (and "locked" where an application could not open the device's keys to try)
State = Literal["decrypted", "pending", "failed", "locked"]
DECRYPTED: State = "decrypted"
PENDING: State = "pending"
FAILED: State = "failed"


class GroupKeysArrived(msgspec.Struct, frozen=True):
    """An event on ``client.updates()``: keys came that pending messages waited for;
    :meth:`SecretGroups.take_resolved` has them."""


class GroupMessage(msgspec.Struct, frozen=True):
    """A message of an end-to-end encrypted group as this device reads it: ``text`` when
    ``state`` is "decrypted"; "pending" while its key has not come; "failed" with the
    reason in ``error`` (altered, replayed, or from a session it may not read)."""

    chat_id: int
    id: int
    sender_id: int
    date: float
    state: State
    text: str | None = None
    error: str | None = None
    reply_to: int | None = None


Action = Callable[[], Awaitable[Any]]


class Incoming(Protocol):
    """What an inbox handler is given (``client.inbox``'s shape): who sent it, the payload,
    and ``later`` for what to run once the batch is acknowledged (sends: the device's Olm
    state is busy while handlers run)."""

    sender_id: int
    sender_device: int
    payload: Any

    def later(self, action: Action) -> None: ...


class Router(Protocol):
    """``client.inbox``, as far as this module uses it."""

    def on(self, kind: type[Any], handler: Callable[[Any], Awaitable[None]]) -> None: ...

    def before_ack(self, hook: Callable[[], Awaitable[None]]) -> None: ...


class SecretGroups:
    def __init__(self, client: Client, policy: RotationPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self.policy = policy or RotationPolicy()
        self.clock = clock  # injectable: rotation by age is tested without sleeping
        self._state: GroupState | None = None
        self._lock = asyncio.Lock()
        self._resolved: list[GroupMessage] = []  # pending messages decrypted since taken
        self._dirty = False  # handlers took keys not yet written (see save)
        self._on_disk: tuple[int, int, int] | None = None  # the state file as last seen
        # Group commit of the state file: a change is numbered (_changed), one write at a
        # time takes every change made before it began (_written), and concurrent senders
        # wait for the same write instead of writing one after another.
        self._changed = 0
        self._written = 0
        self._writing: asyncio.Task[None] | None = None
        self.rotations = 0      # outbound sessions started (tests, bench)

    # -- state --------------------------------------------------------------------------------
    @property
    def _pickle_key(self) -> bytes:
        return self._client.devices.vault.pickle_key

    def _file(self) -> Vault:
        """``group-keys.vault`` beside the device's keys, sealed under the same key."""
        vault = self._client.devices.vault
        return vault.sibling(None if vault.path is None else vault.path.with_name(STATE_FILE))

    async def _opened(self) -> GroupState:
        devices = self._client.devices
        if self._state is None or self._state.device_id != devices.device_id:
            file = self._file()
            data = await file.read()
            self._on_disk = await asyncio.to_thread(signature, file.path)
            state = megolm.load_state(data)
            if state.device_id != devices.device_id:  # a new login is a new device
                state = GroupState(device_id=devices.device_id)
            self._state = state
        return self._state

    async def _save(self) -> None:
        """The state as it is now, on disk before this returns."""
        await self._durable(self._change())

    def _change(self) -> int:
        """Number a change of the state (made by the caller, under ``_lock``)."""
        self._changed += 1
        return self._changed

    async def _durable(self, change: int) -> None:
        """Until a write that began after ``change`` was made has finished. Writes go one at
        a time, each of the whole state as it is when it begins, so a later write never
        lands before an earlier one; a failed write fails its waiters, and the next caller
        starts another."""
        while self._written < change:
            if self._writing is None or self._writing.done():
                self._writing = asyncio.create_task(self._write())
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        assert self._state is not None
        upto = self._changed
        data = megolm.dump_state(self._state)  # no await between the count and the snapshot
        file = self._file()
        await file.save(data)
        self._on_disk = await asyncio.to_thread(signature, file.path)
        self._written = max(self._written, upto)

    async def reload_if_changed(self) -> bool:
        """Forget the state held in memory if another process (holding the profile's
        ``e2e.lock`` before this one) saved the file since; it is read again when needed."""
        if self._state is None or not self._client.devices.is_open:
            return False
        async with self._lock:
            await self.save_now()
            await self._durable(self._changed)  # a sender's write still on its way
            if await asyncio.to_thread(signature, self._file().path) == self._on_disk:
                return False
            self._state = None
            return True

    # -- creating and sending -----------------------------------------------------------------
    async def create(self, title: str, member_ids: list[int]) -> Chat:
        """A new end-to-end encrypted group (its first send shares the key)."""
        return await self._client.chats.create_group(title, member_ids, secret=True)

    async def send(self, chat_id: int, text: str, *, reply_to: int | None = None,
                   random_id: int | None = None) -> SentMessage:
        """``text`` encrypted for the group's member devices (sharing a new session's key
        first when one is due). The server sees only the ciphertext."""
        text = validate_text(text)
        if len(text) > limits.MAX_TEXT_CHARS:  # the server cannot count what it cannot read
            raise InvalidArgument(f"a message can be at most {limits.MAX_TEXT_CHARS:,} "
                                  "characters", code="TEXT_INVALID")
        members = await self._members(chat_id)
        devices = await self._client.devices.query(sorted(members))
        share: RoomKey | None = None
        async with self._lock:
            state = await self._opened()
            now = self.clock()
            out = state.outbound.get(chat_id)
            due = "first message" if out is None else megolm.rotation_due(
                out, now, self.policy, members, {d.device_id for d in devices})
            if due is not None:
                log.info("new group session for chat %d: %s", chat_id, due)
                out, share = self._rotate(state, chat_id, now, members, devices)
            assert out is not None
            sealed = megolm.encrypt(out, self._client.devices.device_id, text, self._pickle_key)
            change = self._change()
        # On disk before it leaves (a ratchet that went back after a crash would reuse an
        # index); waited for outside the lock, so that concurrent sends share one write.
        await self._durable(change)
        # Shared outside the lock: the inbox's handlers take it while the device's Olm state
        # is busy, so holding it across an Olm send could deadlock a following client.
        if share is not None:
            await self._share(share, members, devices)
        return await self._client.messages.send(chat_id, "", reply_to=reply_to,
                                                random_id=random_id, ciphertext=sealed)

    async def _members(self, chat_id: int) -> set[int]:
        found: set[int] = set()
        offset = 0
        while True:
            page: list[Member] = await self._client.chats.members(chat_id, offset, MEMBERS_PAGE)
            if not page:
                return found
            found.update(member.user.id for member in page)
            offset += len(page)

    def _rotate(self, state: GroupState, chat_id: int, now: float, members: set[int],
                devices: list[DeviceKeys]) -> tuple[Outbound, RoomKey]:
        """A new outbound session (the caller saves the state) and its key, to share."""
        own_user, own_device = self._user_id, self._client.devices.device_id
        old = state.outbound.get(chat_id)
        if old is not None:
            state.old_outbound = [*state.old_outbound, old][-megolm.MAX_OLD_OUTBOUND:]
        out, key = megolm.new_outbound(chat_id, now, members, {d.device_id for d in devices},
                                       self._pickle_key)
        self._keep_inbound(state, megolm.own_inbound(out, own_user, own_device,
                                                     self._pickle_key))
        state.outbound[chat_id] = out
        self.rotations += 1
        return out, RoomKey(chat_id=chat_id, session_id=out.session_id, session_key=key)

    async def _share(self, key: RoomKey, members: set[int], devices: list[DeviceKeys]) -> None:
        body = encode_payload(key)
        own_device = self._client.devices.device_id
        targets = [d for d in devices if d.device_id != own_device]
        try:
            await self._client.devices.send_to_devices(targets, body)
        except NotFound:
            # A device logged out between the query and the send (the batch is all or
            # none): share with those still there; the next send rotates past it.
            still = {d.device_id for d in await self._client.devices.query(sorted(members))}
            await self._client.devices.send_to_devices(
                [d for d in targets if d.device_id in still], body)

    @property
    def _user_id(self) -> int:
        user_id = self._client.profile.user_id
        if user_id is None:
            raise RuntimeError("log in first")
        return user_id

    # -- reading ------------------------------------------------------------------------------
    async def decrypt(self, messages: list[Message]) -> list[GroupMessage]:
        """These messages of encrypted groups as this device reads them (a message without
        ciphertext, one deleted, reads as failed). Those whose key is missing are kept,
        and their keys asked for."""
        async with self._lock:
            state = await self._opened()
            out = [self._read(state, Pending(chat_id=m.chat_id, message_id=m.id,
                                             sender_id=m.sender_id, date=m.date,
                                             ciphertext=m.ciphertext or b"",
                                             reply_to=m.reply_to))
                   for m in messages]
            await self._save()
        await self._ask_for_missing()
        return out

    def _read(self, state: GroupState, item: Pending) -> GroupMessage:
        def result(status: State, text: str | None = None,
                   error: str | None = None) -> GroupMessage:
            return GroupMessage(item.chat_id, item.message_id, item.sender_id, item.date,
                                status, text, error, item.reply_to)
        if not item.ciphertext:
            return result(FAILED, error="not an encrypted message")
        try:
            sealed = megolm.read_sealed(item.ciphertext)
            inbound = state.inbound.get(megolm.inbound_key(item.chat_id, sealed.device_id,
                                                           sealed.session_id))
            if inbound is None:
                raise megolm.KeyTooNew("its key has not arrived yet")
            read = megolm.decrypt(inbound, sealed, item.chat_id, item.sender_id,
                                  self._pickle_key)
            megolm.check_replay(state, read, item.message_id)
        except megolm.KeyTooNew as exc:
            if item not in state.pending:  # kept until its key comes
                state.pending = [*state.pending, item][-megolm.MAX_PENDING:]
            return result(PENDING, error=str(exc))
        except CannotDecrypt as exc:
            return result(FAILED, error=str(exc))
        return result(DECRYPTED, read.text)

    async def history(self, chat_id: int, before_id: int | None = None,
                      limit: int = 50) -> list[GroupMessage]:
        """A page of the group's history (newest first), decrypted on this device."""
        page = await self._client.messages.history(chat_id, before_id=before_id, limit=limit)
        return await self.decrypt([m for m in page if not m.deleted])

    def take_resolved(self) -> list[GroupMessage]:
        """Messages that were pending and were decrypted since the last call, in order."""
        out, self._resolved = self._resolved, []
        return out

    def pending(self) -> list[Pending]:
        return list(self._state.pending) if self._state is not None else []

    # -- keys arriving and asked for ----------------------------------------------------------
    def attach(self, inbox: Router) -> None:
        """Take group payloads from ``client.inbox`` (and save once per batch, before it is
        acknowledged)."""
        inbox.on(RoomKey, self.on_room_key)
        inbox.on(RoomKeyRequest, self.on_key_request)
        inbox.on(Renew, self.on_renew)
        inbox.before_ack(self.save)

    async def save(self) -> None:
        """Write what the handlers took (the inbox's ``before_ack`` hook: once a batch)."""
        async with self._lock:
            await self.save_now()
        if self._resolved:  # a reader following the updates prints them (GroupKeysArrived)
            self._client.emit(GroupKeysArrived())

    async def save_now(self) -> None:
        """(with ``_lock`` held)"""
        if self._dirty:
            await self._save()
            self._dirty = False

    async def on_room_key(self, message: Incoming) -> None:
        """A group session's key, from the device that sends with it or forwarded by one of
        this user's own devices; the messages that waited for it are decrypted."""
        payload: RoomKey = message.payload
        if payload.sender_device in (0, message.sender_device):
            owner_device, owner_user = message.sender_device, message.sender_id
        elif message.sender_id == self._user_id and payload.exported and payload.sender_user:
            owner_device, owner_user = payload.sender_device, payload.sender_user
        else:
            log.warning("device %d forwarded a group key it may not: ignored",
                        message.sender_device)
            return
        async with self._lock:
            state = await self._opened()
            try:
                inbound = megolm.inbound_from_key(
                    payload.chat_id, owner_device, owner_user, payload.session_id,
                    payload.session_key, payload.exported, self._pickle_key)
            except CannotDecrypt as exc:
                log.warning("a group key from device %d is unusable: %s",
                            message.sender_device, exc)
                return
            if not self._keep_inbound(state, inbound):
                return
            waiting, state.pending = state.pending, []
            for item in waiting:
                read = self._read(state, item)
                if read.state != PENDING:
                    self._resolved.append(read)
            self._dirty = True

    def _keep_inbound(self, state: GroupState, inbound: Inbound) -> bool:
        key = megolm.inbound_key(inbound.chat_id, inbound.device_id, inbound.session_id)
        held = state.inbound.get(key)
        if held is not None and (held.user_id != inbound.user_id or
                                 not megolm.better(inbound, held, self._pickle_key)):
            return False
        if held is None and len(state.inbound) >= megolm.MAX_INBOUND_SESSIONS:
            state.inbound.pop(next(iter(state.inbound)))
        state.inbound[key] = inbound
        if key in state.requested:
            state.requested = [k for k in state.requested if k != key]
        return True

    async def on_key_request(self, message: Incoming) -> None:
        """Another device lacks a key: re-share it (exported at the index asked) if this
        device holds it and the asker is entitled: a member when the session was used, or
        one of this user's own devices. Sent once the inbox batch is acknowledged."""
        payload: RoomKeyRequest = message.payload
        own_user, own_device = self._user_id, self._client.devices.device_id
        async with self._lock:
            state = await self._opened()
            inbound = state.inbound.get(megolm.inbound_key(
                payload.chat_id, payload.sender_device, payload.session_id))
            if inbound is None:
                return
            if payload.sender_device == own_device:
                out = next((o for o in [*state.outbound.values(), *state.old_outbound]
                            if o.session_id == payload.session_id
                            and o.chat_id == payload.chat_id), None)
                start = megolm.first_index(out, message.sender_id, message.sender_device,
                                           own_user)
            else:  # forwarding someone else's key: to this user's own devices only
                start = 0 if message.sender_id == own_user else None
            exported = megolm.export(inbound, max(payload.index, start), self._pickle_key) \
                if start is not None else None
        if exported is None:
            log.info("device %d asked for a group key it may not have", message.sender_device)
            return
        forwarded = payload.sender_device != own_device
        key = RoomKey(chat_id=payload.chat_id, session_id=payload.session_id,
                      session_key=exported, exported=True,
                      sender_device=payload.sender_device if forwarded else 0,
                      sender_user=inbound.user_id if forwarded else 0)
        message.later(self._reshare(message.sender_id, message.sender_device, [key]))

    async def on_renew(self, message: Incoming) -> None:
        """A device started a fresh Olm session with this one because it could not read
        something from it: what it missed may have been group keys, so the current session
        of every group it is a member of is re-shared with it (from its first index if it was
        shared with that device, else from the next message: megolm.first_index)."""
        own_user = self._user_id
        async with self._lock:
            state = await self._opened()
            keys = []
            for out in state.outbound.values():
                inbound = state.inbound.get(megolm.inbound_key(
                    out.chat_id, self._client.devices.device_id, out.session_id))
                start = megolm.first_index(out, message.sender_id, message.sender_device,
                                           own_user)
                if inbound is None or start is None:
                    continue
                exported = megolm.export(inbound, start, self._pickle_key)
                if exported is not None:
                    keys.append(RoomKey(chat_id=out.chat_id, session_id=out.session_id,
                                        session_key=exported, exported=True))
        if keys:
            message.later(self._reshare(message.sender_id, message.sender_device, keys))

    def _reshare(self, user_id: int, device_id: int, keys: list[RoomKey]) -> Action:
        async def send() -> None:
            targets = [d for d in await self._client.devices.query([user_id])
                       if d.device_id == device_id]
            for key in keys if targets else []:
                await self._client.devices.send_to_devices(targets, encode_payload(key))
        return send

    async def _ask_for_missing(self) -> None:
        """A RoomKeyRequest, once per session, for the keys pending messages wait for: to
        the sending device and this user's other devices."""
        async with self._lock:
            state = await self._opened()
            wanted: dict[str, tuple[Pending, megolm.Sealed]] = {}
            for item in state.pending:
                try:
                    sealed = megolm.read_sealed(item.ciphertext)
                except CannotDecrypt:
                    continue
                key = megolm.inbound_key(item.chat_id, sealed.device_id, sealed.session_id)
                if key not in state.requested and key not in wanted:
                    wanted[key] = (item, sealed)
            if not wanted:
                return
            state.requested = [*state.requested, *wanted][-megolm.MAX_PENDING:]
            await self._save()
        own_user, own_device = self._user_id, self._client.devices.device_id
        users = sorted({own_user, *(item.sender_id for item, _ in wanted.values())})
        devices = await self._client.devices.query(users)
        for item, sealed in wanted.values():
            index = megolm.message_index(sealed)
            targets = [d for d in devices if d.device_id != own_device and (
                d.user_id == own_user or d.device_id == sealed.device_id)]
            request = RoomKeyRequest(chat_id=item.chat_id, sender_device=sealed.device_id,
                                     session_id=sealed.session_id, index=index)
            if targets:
                await self._client.devices.send_to_devices(targets, encode_payload(request))
