"""``pigeon receive``: print what arrived since the last ``receive`` on this profile.

Issue 11: what it prints is marked as read, as ``history`` does (bug 7: ``chats`` showed
``[65 unread]`` after everything was received); messages sent from this device with
``pigeon send`` are not shown back (bug 8; those from the account's other devices are); an
empty ``receive`` on a terminal says so; and a follower whose session is terminated from
another device says so and exits 1 instead of waiting for ever (bug 2).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from pigeon.client import Client
from pigeon.client.inbox import InboxGap
from pigeon.client.secret import HistoryReloaded, SecretMessage, Undecryptable
from pigeon.client.secret_groups import GroupKeysArrived
from pigeon.client.verification import VerificationRequest
from pigeon.protocol.errors import Forbidden, NotFound, Unauthorized
from pigeon.protocol.updates import (
    ChatUpdate, DeleteMessages, EditMessage, NewMessage, ReadOutbox, Typing,
)

from pigeon.protocol.types import Message, User

from . import events, secret_groups
from .args import MAX_MESSAGE_ID
from .context import Ctx, run, session, warn
from .names import Names
from .output import echo
from .search import Kept
from .secret import (
    ProfileKeys, lost_line, secret_line, undecryptable_line, verification_line,
    warn_of_devices,
)

pass_ctx = click.make_pass_decorator(Ctx)
SEND_WAIT = 10.0  # seconds to wait for a `pigeon send` in flight to say what it sent
QUOTES_KEPT = 10_000  # texts of printed messages kept, for the replies that follow them


class Printer:
    """Prints updates, remembering per chat the last message printed, to mark as read."""

    def __init__(self, client: Client, as_json: bool, kept: Kept) -> None:
        self.client = client
        self.kept = kept
        self.to_keep: list[tuple[Message, User | None]] = []  # for the archive, in a batch
        self.names = Names(client)
        self.as_json = as_json
        self.printed = 0
        self.unread: dict[int, int] = {}  # chat -> highest message id printed, not yet marked
        self.texts: dict[tuple[int, int], str] = {}  # (chat, id) -> text, of what was printed
        self.shown: dict[int, list[str]] = {}  # secret chat -> ids printed, countdown not started

    async def show(self, update: Any) -> None:
        line = await self._line(update)
        if line is None:
            return
        echo(line)
        sys.stdout.flush()
        self.printed += 1

    async def _line(self, update: Any) -> str | None:
        """The line ``update`` prints as, or None for those not shown: deleted messages,
        this device's own sends, its own read marks (``read_inbox``: what `receive` itself
        did) and types a later server may send."""
        if isinstance(update, (NewMessage, EditMessage)):
            return await self._message(update)
        if isinstance(update, DeleteMessages):
            await self.keep()  # what is about to be forgotten may still wait to be kept
            await self.kept.forget(update.chat_id, update.message_ids)
            return events.deletion(update, self.as_json)
        if isinstance(update, ReadOutbox):
            return events.read_receipt(update, self.as_json)
        if isinstance(update, Typing):
            return events.typing(update, await self.names.get(update.user_id), self.as_json)
        if isinstance(update, ChatUpdate):
            return events.membership(update, self.as_json)
        if isinstance(update, SecretMessage):
            return None  # printed from the store: show_secrets
        if isinstance(update, GroupKeysArrived):
            return await self._resolved()
        if isinstance(update, Undecryptable):
            return undecryptable_line(update, await self.names.get(update.sender_id),
                                      self.as_json)
        if isinstance(update, InboxGap):
            return lost_line(update, self.as_json)
        if isinstance(update, VerificationRequest):
            return verification_line(update, self.as_json)
        return None

    async def _message(self, update: NewMessage | EditMessage) -> str | None:
        msg, edited = update.message, isinstance(update, EditMessage)
        if msg.deleted or (not edited and await self._sent_here(update)):
            return None  # (`pigeon send` kept its own message)
        if msg.ciphertext is not None:
            return await self._group_message(msg)
        sender = await self.names.get(msg.sender_id)
        self.to_keep.append((msg, sender))
        quote = None
        if msg.reply_to and not self.as_json:
            quote = await self._quote(msg.chat_id, msg.reply_to)
        if len(self.texts) >= QUOTES_KEPT:
            self.texts.clear()
        self.texts[(msg.chat_id, msg.id)] = msg.text
        self.unread[msg.chat_id] = max(msg.id, self.unread.get(msg.chat_id, 0))
        return events.message_event(msg, sender, edited=edited, quote=quote,
                                    as_json=self.as_json)

    async def _group_message(self, msg: Message) -> str:
        """A message of an end-to-end encrypted group, decrypted on this device (kept out
        of the search archive: it must not reach the disk in the clear); without the
        device's keys open (no passphrase), printed as locked, never dropped."""
        self.unread[msg.chat_id] = max(msg.id, self.unread.get(msg.chat_id, 0))
        sender = await self.names.get(msg.sender_id)
        if not self.client.devices.is_open:
            return secret_groups.locked_event(msg, sender, self.as_json)
        groups = self.client.secret_groups
        async with self.client.e2e_guard():
            [read] = await groups.decrypt([msg])
            if read.state == "pending":
                # Its key may be in the inbox already (the message came first on another
                # stream): read the inbox before saying the message waits.
                await self.client.inbox.receive()
        lines = []
        for resolved in groups.take_resolved():
            if (resolved.chat_id, resolved.id) == (msg.chat_id, msg.id):
                read = resolved
            else:
                lines.append(secret_groups.secret_event(
                    resolved, await self.names.get(resolved.sender_id), self.as_json))
        lines.append(secret_groups.secret_event(read, sender, self.as_json))
        return "\n".join(lines)

    async def _resolved(self) -> str | None:
        """Group messages that waited for their key, now that it came."""
        lines = [secret_groups.secret_event(read, await self.names.get(read.sender_id),
                                            self.as_json)
                 for read in self.client.secret_groups.take_resolved()]
        return "\n".join(lines) if lines else None

    async def _quote(self, chat_id: int, message_id: int) -> str | None:
        """What the reply answers: printed just before, or asked of the server."""
        text = self.texts.get((chat_id, message_id))
        if text is None:
            text = await self.kept.text(chat_id, message_id)
        if text is None:
            try:
                page = await self.client.messages.history(
                    chat_id, before_id=min(message_id + 1, MAX_MESSAGE_ID), limit=1)
            except (Forbidden, NotFound):
                return None
            if not page or page[0].id != message_id or page[0].deleted:
                return None
            text = page[0].text
        return events.quoted(text)

    async def _sent_here(self, update: NewMessage) -> bool:
        """Whether ``pigeon send`` on this profile sent it. A send still in flight has not
        yet written down what it sent: wait for it (a bounded while)."""
        if update.message.sender_id != self.client.profile.user_id:
            return False
        deadline = time.monotonic() + SEND_WAIT
        while (here := self.client.profile.sent_here(update.pts, update.message.chat_id)) is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return here

    async def keep(self) -> None:
        """Keep what was printed in the archive that `pigeon search` searches."""
        if self.to_keep:
            batch, self.to_keep = self.to_keep, []
            await self.kept.keep(batch)

    async def show_secrets(self) -> None:
        """Print the secret messages this device holds and has not printed yet (whichever
        command read them from the inbox), and remember them as printed."""
        if not self.client.secret.is_open:
            return
        async with self.client.e2e_guard():
            messages = self.client.secret.unreported()
            peers = {msg.chat_id: msg for msg in messages if not msg.outgoing}
            if peers:  # a new device or key of whoever wrote: said before what they wrote
                await warn_of_devices(self.client, [self.client.secret.peer_of(chat)
                                                    for chat in peers], self.as_json)
            for msg in messages:
                echo(secret_line(msg, await self.names.get(msg.sender_id), self.as_json))
                sys.stdout.flush()
                self.printed += 1
                if not msg.outgoing:  # its countdown starts once printed
                    self.shown.setdefault(msg.chat_id, []).append(msg.message_id)
            if messages:
                await self.client.secret.mark_reported(messages)

    async def mark_shown(self) -> None:
        """Start the countdowns of the secret messages printed (and tell their senders)."""
        for chat_id, ids in list(self.shown.items()):
            del self.shown[chat_id]
            async with self.client.e2e_guard():
                await self.client.secret.mark_shown(chat_id, ids)

    async def mark_read(self) -> None:
        """Mark what was printed as read, chat by chat."""
        for chat_id, max_id in list(self.unread.items()):
            try:
                await self.client.messages.read(chat_id, max_id)
            except (Forbidden, NotFound):
                pass  # left the chat (or it is gone) since: nothing there to mark
            del self.unread[chat_id]


def _passphrase(ctx: Ctx) -> str | None:
    """The passphrase if this profile has secret chats to read; None (with a warning) when
    none can be had: plain messages are still printed."""
    if not ctx.has_secrets():
        return None
    try:
        return ctx.passphrase()
    except Unauthorized as exc:
        warn(f"secret messages are not read: {exc.message}")
        return None


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep running and print messages as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--mark-read/--no-mark-read", default=True, show_default=True,
              help="Mark the messages printed as read, as `history` does.")
@pass_ctx
@run
async def receive(ctx: Ctx, follow: bool, as_json: bool, mark_read: bool) -> None:
    """Print the messages that arrived since the last `receive` on this profile (but not
    those sent from it), and on lines of their own: edits, deletions, read receipts, typing
    (with --follow) and changes to your groups; replies show what they answer. On a terminal
    an empty receive says so; piped, or with --json, it prints nothing. What it shows is
    kept on this device for `pigeon search`."""
    kept = Kept(ctx.profile_dir)
    try:
        passphrase = _passphrase(ctx)
        keys = ProfileKeys(ctx)
        async with session(ctx, track_updates=True) as client:
            keys.client, client.e2e_guard = client, keys.held
            printer = Printer(client, as_json, kept)
            await client.sync()  # everything since the last `receive` on this profile
            if passphrase is not None:
                async with keys.held():
                    await secret_groups.open_keeping_place(client, passphrase)
                    await client.secret.receive()  # kept here, then acknowledged
            # The profile is saved after printing: a crash repeats a line, never loses one.
            for update in client.take_updates():
                await printer.show(update)
            await printer.show_secrets()
            await printer.show(GroupKeysArrived())  # messages that waited for a key just read
            await printer.keep()
            await printer.mark_shown()
            if mark_read:
                await printer.mark_read()
            client.save()
            if printer.printed == 0 and not as_json and sys.stdout.isatty():
                echo("no new messages" + ("; waiting for more (Ctrl-C to stop)" if follow else ""))
            if follow:
                shown = client.profile.pts
                if client.secret.is_open:
                    client.secret.follow()  # (the inbox: 1:1 and group payloads alike)
                try:
                    async for update in client.updates():
                        await printer.show(update)
                        if isinstance(update, SecretMessage | HistoryReloaded):
                            await printer.show_secrets()
                        await printer.keep()
                        await printer.mark_shown()
                        if mark_read:
                            await printer.mark_read()
                        if getattr(update, "pts", 0):
                            shown = update.pts
                            client.profile.save(pts=shown)
                finally:
                    # Closing saves the profile: only as far as what was printed.
                    client.profile.pts = min(client.profile.pts, shown)
    finally:
        kept.close()
