"""``pigeon search``, and the message archive in the profile that it searches (issue 11).

``receive``, ``history`` and ``send`` keep what they show or send in the profile's archive
(:mod:`pigeon.client.archive`); ``edit``, ``delete`` and the edits and deletions ``receive``
shows keep it true. The archive is written in a thread, off the event loop; a failure to
write it is a warning, never the command's failure (the message was sent, or shown).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from pigeon.client.archive import ARCHIVE_FILE, MAX_RESULTS, Archive, Found
from pigeon.protocol.types import Message, User

from .context import Ctx, chat_id_of, os_error, resolve_chat, run, session, warn
from .events import quoted
from .output import echo, message_json, message_line, visible

pass_ctx = click.make_pass_decorator(Ctx)


class Kept:
    """The profile's archive for one command: opened on first use, used from one thread at
    a time (each call awaits the one before), closed with :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._archive: Archive | None = None
        self._warned = False

    def _call(self, method: str, *args: Any) -> Any:
        if self._archive is None:
            self._archive = Archive(self.directory)
        return getattr(self._archive, method)(*args)

    async def _run(self, method: str, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(self._call, method, *args)
        except (sqlite3.Error, OSError) as exc:
            if not self._warned:  # once a command: the next write would say the same
                self._warned = True
                why = os_error(exc) if isinstance(exc, OSError) else str(exc)
                warn(f"the local message archive (for `pigeon search`) was not updated: {why}")
            return None

    async def keep(self, found: Iterable[tuple[Message, User | None]]) -> None:
        await self._run("keep", list(found))

    async def forget(self, chat_id: int, message_ids: Iterable[int]) -> None:
        await self._run("forget", chat_id, list(message_ids))

    async def text(self, chat_id: int, message_id: int) -> str | None:
        text: str | None = await self._run("text", chat_id, message_id)
        return text

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None


async def keep(ctx: Ctx, found: Iterable[tuple[Message, User | None]] = (),
               chat_id: int = 0, forget: Iterable[int] = ()) -> None:
    """For one command: keep ``found`` and forget ``forget`` (ids in ``chat_id``)."""
    kept = Kept(ctx.profile_dir)
    try:
        await kept.keep(found)
        await kept.forget(chat_id, forget)
    finally:
        kept.close()


@click.command()
@click.argument("text")
@click.option("--chat", default=None, help="Only in this chat (chat:ID, @username or user:ID).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_RESULTS))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, as `history`.")
@pass_ctx
@run
async def search(ctx: Ctx, text: str, chat: str | None, limit: int, as_json: bool) -> None:
    """Find the messages on this device (those `receive` and `history` showed, and those
    sent from it) that hold every word of TEXT (or words that start with it; case and
    accents do not matter), newest first. Works offline but for --chat @username."""
    chat_id = None
    if chat is not None:
        if chat.startswith(("@", "user:")):
            async with session(ctx) as client:
                chat_id = await resolve_chat(client, chat)
        else:
            chat_id = chat_id_of(chat)
    me = ctx.profile().user_id
    found: list[Found] = []
    answered: dict[tuple[int, int], str] = {}
    if (ctx.profile_dir / ARCHIVE_FILE).exists():  # searching creates nothing
        try:
            found, answered = await asyncio.to_thread(_search, ctx.profile_dir, text, chat_id,
                                                      limit)
        except sqlite3.Error as exc:
            raise click.ClickException(
                f"the local message archive cannot be read: {visible(str(exc))}") from None
    for message, sender in found:
        if sender is None and message.sender_id == me:
            sender = User(id=me, name="you")  # this device's own sends are kept nameless
        if as_json:
            echo(message_json(message, sender))
            continue
        quote = answered.get((message.chat_id, message.reply_to or 0))
        echo(message_line(message, sender, quote=None if quote is None else quoted(quote)))
    if not found and not as_json and sys.stdout.isatty():
        echo("no messages found on this device")


def _search(directory: Path, text: str, chat_id: int | None,
            limit: int) -> tuple[list[Found], dict[tuple[int, int], str]]:
    """What was found, and the texts its replies answer (those this device has)."""
    with Archive(directory) as archive:
        found = archive.search(text, chat_id, limit)
        answered = {}
        for message, _ in found:
            if message.reply_to:
                text_of = archive.text(message.chat_id, message.reply_to)
                if text_of is not None:
                    answered[(message.chat_id, message.reply_to)] = text_of
        return found, answered
