"""``pigeon secret start|ttl|list`` and the secret halves of ``send``, ``receive`` and
``history`` (issue 9): end-to-end encrypted one-to-one chats, read on every device of both
people, whose messages can self-destruct.

Every command here unlocks this device's keys with the passphrase (``--passphrase-file``,
``PIGEON_PASSPHRASE_FILE`` or a prompt on a terminal); a wrong one is one line, exit 1.
Chats are named ``secret:ID`` (or by the peer, ``@user``/``user:ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import click

from pigeon.client import Client
from pigeon.client.inbox import InboxGap
from pigeon.client.secret import NoSuchSecretChat, SecretMessage, Undecryptable
from pigeon.client.verification import VerificationRequest
from pigeon.protocol.errors import Conflict
from pigeon.protocol.media import Media
from pigeon.protocol.types import User

from .args import BadTtl, ttl as parse_ttl
from .context import Ctx, resolve_user, run, session, warn
from .names import Names
from .output import duration, echo, json_line, media_label, visible, visible_body, when, who

pass_ctx = click.make_pass_decorator(Ctx)
PREFIX = "secret:"
E2E_LOCK = "e2e.lock"  # flock'ed by the one process using the profile's end-to-end keys
E2E_LOCK_WAIT = 10.0  # seconds a command waits for another to let go of them


class TtlType(click.ParamType):
    """A self-destruct timer: 30s, 5m, 1h, 2d (1 second to 1 week); ``off`` where allowed."""

    name = "TIMER"

    def __init__(self, allow_off: bool = False) -> None:
        self.allow_off = allow_off

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return parse_ttl(str(value), allow_off=self.allow_off)
        except BadTtl as exc:
            self.fail(str(exc), param, ctx)


TTL, TTL_OR_OFF = TtlType(), TtlType(allow_off=True)


class ProfileKeys:
    """This profile's end-to-end state, for one process at a time: two holding one device's
    Olm sessions at once would each save their own and lose the other's ratchet steps
    (messages that then cannot be decrypted). A process takes it (flock on ``e2e.lock``)
    for a short command, or, following, for each batch it reads and each message it marks,
    and reloads whatever another process saved meanwhile; so a `send --secret` runs while a
    `receive --follow` on the same profile waits for messages. One that cannot have it
    within ``E2E_LOCK_WAIT`` says who holds it. Re-entrant within a process."""

    def __init__(self, ctx: Ctx) -> None:
        self._path = ctx.profile_dir / E2E_LOCK
        self._fd: int | None = None
        self._depth = 0
        self._entering = asyncio.Lock()
        self.client: Client | None = None

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        # One task takes the lock and reloads while the others of this process wait, then
        # share it (each is an outermost use: none holds the device's own lock).
        async with self._entering:
            if self._depth == 0:
                await self._acquire()
                try:
                    if self.client is not None:  # another process may have written since
                        await self.client.devices.reload_if_changed()
                        if self.client.secret.is_open:
                            await self.client.secret.reload_if_changed()
                        await self.client.secret_groups.reload_if_changed()
                except BaseException:
                    self._release()
                    raise
            self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._release()

    async def _acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + E2E_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise Conflict(
                        "this profile's secret chats are busy in another pigeon process: "
                        "try again when it is done; one process at a time reads and writes "
                        "a device's end-to-end keys", code="PROFILE_BUSY") from None
                await asyncio.sleep(0.05)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # (releases the lock)
            self._fd = None


@contextlib.asynccontextmanager
async def secret_session(ctx: Ctx, track_updates: bool = False, hold_keys: bool = True,
                         announce: bool = True) -> AsyncIterator[Client]:
    """A connected client whose secret chats are open and up to date: what waits in the
    device's inbox is read first (a chat's timer or id may have changed, a peer's device
    may have asked for a new session); new messages stay for `receive` to print. The
    profile's end-to-end state is held for the whole command, or (``hold_keys`` False: a
    command that waits for a person, `devices verify`) for each use of it. A request to
    verify this device read meanwhile is said on stderr (``announce``) and kept for
    `devices verify --accept`."""
    passphrase = await asyncio.to_thread(ctx.passphrase)
    keys = ProfileKeys(ctx)
    async with contextlib.AsyncExitStack() as stack:
        if hold_keys:
            await stack.enter_async_context(keys.held())
        client = await stack.enter_async_context(session(ctx, track_updates=track_updates))
        keys.client, client.e2e_guard = client, keys.held
        async with keys.held():
            await client.secret.open(passphrase)
            await client.secret.receive()
        for event in client.take_updates():
            if isinstance(event, Undecryptable):
                warn(undecryptable_line(event, None, as_json=False))
            elif isinstance(event, InboxGap):
                warn(lost_line(event, as_json=False))
            elif isinstance(event, VerificationRequest) and announce:
                warn(event.line)
        yield client


def _me(client: Client) -> int:
    user_id = client.profile.user_id
    assert user_id is not None
    return user_id


async def warn_of_devices(client: Client, user_ids: list[int], as_json: bool) -> None:
    """The trust warnings (a new device, a changed key) these users' devices owe since this
    device last looked: a ``warning:`` line each on stderr, or with ``as_json`` a JSON line
    (``"type": "device_warning"``) on stdout."""
    for warning in await client.trust.check(list(dict.fromkeys([*user_ids, _me(client)]))):
        if as_json:
            echo(json_line(warning.as_json()))
        else:
            warn(f"{visible(warning.message)}; compare keys with `pigeon devices verify "
                 f"user:{warning.user_id} --device {warning.device_id}`")


def is_secret_ref(ref: str) -> bool:
    return ref.startswith(PREFIX)


async def resolve_secret(client: Client, ref: str, *, start: bool = False) -> int:
    """``secret:ID``, or the chat with ``@user``/``user:ID`` (started if ``start``)."""
    if is_secret_ref(ref):
        raw = ref[len(PREFIX):]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) < 2**63:
            raise click.UsageError(f"{ref!r} is not secret:ID")
        return int(raw)
    user_id = await resolve_user(client, ref)
    if start:
        return await client.secret.start(user_id)
    chat = client.secret.chat_with(user_id)
    if chat is None:
        raise NoSuchSecretChat(f"no secret chat with {ref} on this device: start one with "
                               f"`pigeon secret start {ref}`")
    return chat


def timer(ttl: int | None) -> str:
    return "off" if ttl is None else duration(ttl)


def secret_media(msg: SecretMessage) -> Media | None:
    """A secret file as a message's media reads (``pigeon download FILE_ID`` decrypts it)."""
    f = msg.file
    return None if f is None else Media(kind="document", file_id=f.file_id, name=f.name,
                                        size=f.size, mime=f.mime)


def secret_line(msg: SecretMessage, sender: User | None, as_json: bool) -> str:
    media = secret_media(msg)
    if as_json:
        body: dict[str, Any] = {
            "chat": f"{PREFIX}{msg.chat_id}", "id": msg.message_id, "sender": msg.sender_id,
            "sender_name": sender.name if sender else None,
            "sender_username": sender.username if sender else None,
            "text": msg.text, "date": msg.sent_at // 1000, "secret": True, "ttl": msg.ttl}
        if media is not None:
            body["media"] = {"kind": media.kind, "file_id": media.file_id, "name": media.name,
                             "size": media.size, "mime": media.mime}
        return json_line(body)
    fuse = f" [self-destructs {timer(msg.ttl)} after shown]" if msg.ttl else ""
    label = f" {media_label(media)}" if media is not None else ""
    return (f"[{PREFIX}{msg.chat_id} {msg.message_id[:8]}] {when(msg.sent_at / 1000)} "
            f"{who(sender, msg.sender_id)}{fuse}:{label} {visible_body(msg.text)}")


def lost_line(event: InboxGap, as_json: bool) -> str:
    """Envelopes the server deleted before this device read them: how many, never what."""
    if as_json:
        return json_line({"type": "lost", "secret": True, "count": event.count,
                          "error": event.reason})
    return (f"[secret] {event.count} end-to-end message(s) for this device were lost: "
            f"{event.reason}")


def undecryptable_line(event: Undecryptable, sender: User | None, as_json: bool) -> str:
    if as_json:
        return json_line({"type": "undecryptable", "secret": True, "sender": event.sender_id,
                          "sender_device": event.sender_device, "text": None, "ttl": None,
                          "error": event.error})
    return (f"[secret] cannot decrypt a message from {who(sender, event.sender_id)} "
            f"(device {event.sender_device}): {visible_body(event.error)}; a new session was "
            "asked for, later messages will read")


def verification_line(event: VerificationRequest, as_json: bool) -> str:
    if as_json:
        return json_line({"type": "verification_request", "user_id": event.user_id,
                          "device_id": event.device_id})
    return f"[verification] {event.line}"


async def send_secret(ctx: Ctx, to: str, text: str, ttl: int | None,
                      only_verified: bool = False) -> None:
    async with secret_session(ctx) as client:
        if only_verified:  # every encryption of this command checks, a chat's start too
            client.secret.require_verified = client.trust.require_verified_users
        if is_secret_ref(to):
            chat: int | None = await resolve_secret(client, to)
            assert chat is not None
            peer = client.secret.peer_of(chat)
        else:
            peer = await resolve_user(client, to)
            chat = client.secret.chat_with(peer)
        # Before anything is encrypted for them: the person may want to stop here.
        await warn_of_devices(client, [peer], as_json=False)
        if only_verified:  # before a chat is started (and kept) for nobody
            await client.trust.require_verified_users([peer, _me(client)])
        sent = await client.secret.send(chat, text, ttl=ttl, user_id=peer)
    fuse = f", self-destructs {timer(sent.ttl)} after shown" if sent.ttl else ""
    echo(f"sent {PREFIX}{sent.chat_id} {sent.message_id[:8]} (end-to-end encrypted{fuse})")


async def secret_history(ctx: Ctx, chat_ref: str, as_json: bool) -> None:
    async with secret_session(ctx) as client:
        chat = await resolve_secret(client, chat_ref)
        messages = await client.secret.history(chat)
        names = Names(client)
        for msg in messages:
            echo(secret_line(msg, await names.get(msg.sender_id), as_json))
        await client.secret.mark_shown(chat)


@click.group()
def secret() -> None:
    """End-to-end encrypted one-to-one chats, on every device of both of you."""


@secret.command("start")
@click.argument("user")
@pass_ctx
@run
async def secret_start(ctx: Ctx, user: str) -> None:
    """Start a secret chat with USER (@username or user:ID), or show the one you have."""
    async with secret_session(ctx) as client:
        chat = await resolve_secret(client, user, start=True)
    echo(f"secret chat {PREFIX}{chat} with {user}: "
         f"{ctx.command(f'send --secret --to {PREFIX}{chat} TEXT')}")


@secret.command("ttl")
@click.argument("chat")
@click.argument("timer_value", metavar="TIMER", type=TTL_OR_OFF)
@pass_ctx
@run
async def secret_ttl(ctx: Ctx, chat: str, timer_value: int | None) -> None:
    """Set CHAT's (@user or secret:ID) default self-destruct TIMER: 30s, 5m, 1h, 2d (1 second
    to 1 week) or off. It counts from when a message is shown."""
    async with secret_session(ctx) as client:
        chat_id = await resolve_secret(client, chat, start=not is_secret_ref(chat))
        await client.secret.set_ttl(chat_id, timer_value)
    echo(f"{PREFIX}{chat_id}: messages self-destruct {timer(timer_value)} after shown"
         if timer_value else f"{PREFIX}{chat_id}: messages no longer self-destruct")


@secret.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@run
async def secret_list(ctx: Ctx, as_json: bool) -> None:
    """List the secret chats on this device."""
    async with secret_session(ctx) as client:
        names = Names(client)
        chats = client.secret.chats()
        for chat in chats:
            peer = await names.get(chat.peer_id)
            if as_json:
                echo(json_line({"chat": f"{PREFIX}{chat.chat_id}", "peer": chat.peer_id,
                                "peer_name": peer.name if peer else None,
                                "ttl": chat.ttl, "messages": chat.messages}))
            else:
                echo(f"{PREFIX}{chat.chat_id}  {who(peer, chat.peer_id)}  timer "
                     f"{timer(chat.ttl)}, {chat.messages} message(s) here")
        if not chats and not as_json:
            echo(f"no secret chats on this device: {ctx.command('secret start @user')}")
