"""``pigeon history``, and ``edit``, ``delete``, ``forward``, ``read`` and ``typing``: what one
does to messages once they are sent (issue 11, "Verbs the protocol has and the CLI lacks")."""

from __future__ import annotations

import click

from pigeon.protocol import limits

from . import secret_groups
from .context import (
    MESSAGE_ID, Ctx, message_text, resolve_chat, run, sent_from_here, session,
)
from . import secret as secret_cli
from .events import quoted
from .names import Names
from .output import echo, message_json, message_line, plural
from .search import keep

pass_ctx = click.make_pass_decorator(Ctx)


@click.command()
@click.argument("chat")
@click.argument("msg_id", type=MESSAGE_ID)
@click.argument("text")
@pass_ctx
@run
async def edit(ctx: Ctx, chat: str, msg_id: int, text: str) -> None:
    """Replace the text of your message MSG_ID in CHAT with TEXT (`-` reads standard input).
    Everyone in the chat sees it marked [edited]."""
    text = message_text(text)
    async with session(ctx) as client:
        message = await client.messages.edit(await resolve_chat(client, chat), msg_id, text)
    await keep(ctx, [(message, None)])
    echo(f"edited chat:{message.chat_id} #{message.id}")


@click.command()
@click.argument("chat")
@click.argument("msg_ids", nargs=-1, required=True, type=MESSAGE_ID)
@click.option("--for-everyone", is_flag=True,
              help="Delete it for every member too (your own messages; admins: anyone's).")
@pass_ctx
@run
async def delete(ctx: Ctx, chat: str, msg_ids: tuple[int, ...], for_everyone: bool) -> None:
    """Delete messages MSG_ID... of CHAT: for you only, or --for-everyone."""
    ids = sorted(set(msg_ids))
    deleted = 0
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        # The server takes at most MAX_IDS_PER_CALL ids a call; a longer list goes in pieces.
        for start in range(0, len(ids), limits.MAX_IDS_PER_CALL):
            result = await client.messages.delete(
                chat_id, ids[start:start + limits.MAX_IDS_PER_CALL], for_everyone)
            deleted += result.count
    await keep(ctx, chat_id=chat_id, forget=ids)
    scope = " for everyone" if for_everyone else ""
    echo(f"deleted {plural(deleted, 'message')} in chat:{chat_id}{scope}")


@click.command()
@click.argument("chat")
@click.argument("msg_id", type=MESSAGE_ID)
@click.option("--to", "to", required=True, help="@username, user:ID or chat:ID")
@pass_ctx
@run
async def forward(ctx: Ctx, chat: str, msg_id: int, to: str) -> None:
    """Forward message MSG_ID of CHAT to another chat (--to); it shows who wrote it first."""
    async with session(ctx) as client:
        from_id, to_id = await resolve_chat(client, chat), await resolve_chat(client, to)
        sent = await sent_from_here(client, to_id, lambda: client.messages.forward(
            from_id, msg_id, to_id))
    await keep(ctx, [(sent.message, None)])
    echo(f"forwarded chat:{from_id} #{msg_id} as chat:{sent.message.chat_id} #{sent.message.id}")


@click.command()
@click.argument("chat")
@click.option("--up-to", type=MESSAGE_ID, default=None,
              help="Mark read up to this message id (default: all of CHAT).")
@pass_ctx
@run
async def read(ctx: Ctx, chat: str, up_to: int | None) -> None:
    """Mark CHAT as read (its senders see a read receipt), up to --up-to or all of it."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        if up_to is None:
            up_to = (await client.chats.get(chat_id)).last_message_id
        result = await client.messages.read(chat_id, up_to)
    echo(f"read chat:{chat_id} up to #{up_to}; {result.unread_count} unread")


@click.command()
@click.argument("chat")
@pass_ctx
@run
async def typing(ctx: Ctx, chat: str) -> None:
    """Tell the members of CHAT who are online that you are typing (shown for a few
    seconds by their `receive --follow`)."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.messages.typing(chat_id)
    echo(f"typing in chat:{chat_id}")


@click.command()
@click.argument("chat")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100))
@click.option("--before", type=int, default=None, help="Page back from this message id.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--mark-read/--no-mark-read", default=True, show_default=True)
@click.option("--secret", "is_secret", is_flag=True,
              help="The secret chat with @username: this device's own history of it.")
@pass_ctx
@run
async def history(ctx: Ctx, chat: str, limit: int, before: int | None, as_json: bool,
                  mark_read: bool, is_secret: bool) -> None:
    """Show the messages of CHAT (@username or chat:ID), oldest first. A secret chat
    (secret:ID, or @username with --secret) shows what this device keeps, without what
    self-destructed."""
    if is_secret or secret_cli.is_secret_ref(chat):
        await secret_cli.secret_history(ctx, chat, as_json)
        return
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        messages = await client.messages.history(chat_id, before_id=before, limit=limit)
        names = Names(client)
        if any(msg.ciphertext is not None for msg in messages):
            # An end-to-end encrypted group: decrypted here, printed, never archived.
            async with secret_groups.unlocked(ctx, client):
                for read in reversed(await client.secret_groups.decrypt(messages)):
                    echo(secret_groups.secret_event(read, await names.get(read.sender_id),
                                                    as_json))
            if mark_read:
                await client.messages.read(chat_id, messages[0].id)
            return
        texts = {msg.id: msg.text for msg in messages}  # what replies on this page answer
        shown = [(msg, await names.get(msg.sender_id)) for msg in reversed(messages)]
        await keep(ctx, shown)
        for msg, sender in shown:
            if as_json:
                echo(message_json(msg, sender))
            else:
                answered = texts.get(msg.reply_to or 0)
                echo(message_line(msg, sender, quote=None if answered is None else
                                  quoted(answered)))
        if mark_read and messages:
            await client.messages.read(chat_id, messages[0].id)


COMMANDS = (history, edit, delete, forward, read, typing)
