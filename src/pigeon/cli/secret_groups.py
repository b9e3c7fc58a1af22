"""What the CLI does for end-to-end encrypted groups (issue 9, deliverable 4): unlock the
device's keys, send encrypted, and print what was decrypted.

The passphrase is the one secret chats use (``Ctx.passphrase``: ``--passphrase-file``,
``PIGEON_PASSPHRASE_FILE`` or a prompt on a terminal), and the device's end-to-end state is
used under the profile's ``e2e.lock`` (:class:`.secret.ProfileKeys`), like ``send --secret``.
Group keys arrive in the device's inbox, read through ``client.inbox`` with 1:1 secret
payloads. Decrypted text is printed, never written to the profile (the search archive
keeps no secret message).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pigeon.client import Client, Profile
from pigeon.crypto.vault import WrongPassphrase
from pigeon.client.secret_groups import GroupMessage
from pigeon.protocol.types import Message, User

from .context import Ctx
from .output import message_json, message_line
from .secret import ProfileKeys

NO_PASSPHRASE = ("end-to-end encryption needs this device's passphrase: --passphrase-file "
                 "PATH or PIGEON_PASSPHRASE_FILE")


@contextlib.asynccontextmanager
async def unlocked(ctx: Ctx, client: Client) -> AsyncIterator[None]:
    """This device's keys open and its inbox read (group keys taken, 1:1 secret messages
    kept for `receive`), with the profile's end-to-end state held by this process: a
    wrong passphrase is one line, exit 1; none at all, PASSPHRASE_REQUIRED."""
    passphrase = ctx.passphrase()
    keys = ProfileKeys(ctx)
    async with keys.held():
        keys.client, client.e2e_guard = client, keys.held
        await client.secret.open(passphrase)
        await client.secret.receive()
        yield


async def open_keeping_place(client: Client, passphrase: str) -> None:
    """Open secret chats and group keys; on a wrong passphrase (one line, exit 1) put the
    profile's place in the updates back where it was saved: the group messages the
    connection caught up with were not shown, so the next `receive` must show them."""
    try:
        await client.secret.open(passphrase)
    except WrongPassphrase:
        if client.profile.directory is not None:
            saved = Profile.load(client.profile.directory)
            client.profile.pts, client.profile.streams = saved.pts, saved.streams
        raise


async def is_secret_group(client: Client, chat_id: int) -> bool:
    return (await client.chats.get(chat_id)).secret


def secret_event(read: GroupMessage, sender: User | None, as_json: bool) -> str:
    """A group message as decrypted here: its text, or a line saying why it cannot be read
    yet (never dropped silently)."""
    shown = Message(chat_id=read.chat_id, id=read.id, sender_id=read.sender_id,
                    date=read.date, reply_to=read.reply_to,
                    text=read.text if read.text is not None else _unreadable(read))
    if as_json:
        extra: dict[str, Any] = {"secret": True, "ttl": None}
        if read.state != "decrypted":
            extra.update(text=None, state=read.state, error=read.error)
        return message_json(shown, sender, **extra)
    return message_line(shown, sender, prefix="[secret] ")


def locked_event(msg: Message, sender: User | None, as_json: bool) -> str:
    """A group message this run cannot decrypt: no passphrase was given."""
    read = GroupMessage(msg.chat_id, msg.id, msg.sender_id, msg.date, "locked",
                        error=NO_PASSPHRASE, reply_to=msg.reply_to)
    return secret_event(read, sender, as_json)


def _unreadable(read: GroupMessage) -> str:
    if read.state == "locked":
        return "[encrypted: give the passphrase (--passphrase-file) to read it]"
    if read.state == "pending":
        return "[waiting for its key: shown when it arrives]"
    return f"[cannot decrypt: {read.error}]"

