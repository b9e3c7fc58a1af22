"""What the CLI does for end-to-end encrypted groups (issue 9, deliverable 4): unlock the
device's keys with the passphrase, send encrypted, and print what was decrypted.

The passphrase comes from ``--passphrase-file PATH``, else the file named by
``PIGEON_PASSPHRASE_FILE``, else a prompt on a terminal; a wrong one is a one-line error,
exit 1. Decrypted text is printed, never written to the profile (the search archive keeps
no secret message).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from pigeon.client import Client, Profile
from pigeon.client.secret_groups import GroupMessage
from pigeon.crypto.vault import VaultDamaged, WrongPassphrase
from pigeon.protocol.types import Message, User

from .context import EXIT_FAILED, Ctx
from .output import message_json, message_line

PASSPHRASE_ENV = "PIGEON_PASSPHRASE_FILE"


def passphrase_given(ctx: Ctx) -> bool:
    """Whether the passphrase comes without asking (a file): then `receive` opens the keys
    every time, so that the device publishes them, takes group keys and answers requests
    for keys even when no encrypted message is among what it prints."""
    return ctx.passphrase_file is not None or bool(os.environ.get(PASSPHRASE_ENV))


def passphrase(ctx: Ctx) -> bytes | None:
    """The passphrase of this device's keys: from the file given, or asked for on a
    terminal; None when there is neither."""
    path = ctx.passphrase_file or (Path(os.environ[PASSPHRASE_ENV])
                                   if os.environ.get(PASSPHRASE_ENV) else None)
    if path is not None:
        return path.read_bytes().rstrip(b"\r\n")
    if sys.stdin.isatty():
        return str(click.prompt("passphrase for this device's keys", hide_input=True,
                                err=True)).encode()
    return None


async def unlock(ctx: Ctx, client: Client, required: bool = True) -> bool:
    """Open this device's keys (made and published on first use). Without a passphrase:
    a usage error if ``required``, else False. A wrong one: one line, exit 1, and the
    profile keeps its place in the updates (nothing was shown)."""
    if client.devices.is_open:
        return True
    secret = passphrase(ctx)
    if secret is None:
        if required:
            raise click.UsageError(NO_PASSPHRASE)
        return False
    try:
        await client.devices.open(secret)
    except (WrongPassphrase, VaultDamaged) as exc:
        _keep_place(client)
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    return True


NO_PASSPHRASE = ("end-to-end encryption needs this device's passphrase: --passphrase-file "
                 f"PATH or {PASSPHRASE_ENV}")


def _keep_place(client: Client) -> None:
    """Put the update positions back to what the profile saved: closing the client saves
    them, and the updates taken since were not shown."""
    if client.profile.directory is not None:
        saved = Profile.load(client.profile.directory)
        client.profile.pts, client.profile.streams = saved.pts, saved.streams


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

