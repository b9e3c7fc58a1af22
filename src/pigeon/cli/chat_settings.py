"""``pigeon mute``/``unmute`` and ``pin``/``unpin`` (issue 11): a mute is yours, on all your
devices; a pinned message is the chat's, for every member."""

from __future__ import annotations

import time

import click

from pigeon.protocol import limits
from pigeon.protocol.types import Chat

from .args import BadSpan, span
from .context import MESSAGE_ID, Ctx, resolve_chat, run, session
from .output import echo, when

pass_ctx = click.make_pass_decorator(Ctx)


def muted(chat: Chat, now: float | None = None) -> str:
    """`` [muted]`` (for ever), `` [muted until 2026-12-02 14:00]``, or nothing."""
    until = chat.muted_until or 0.0
    if until <= (time.time() if now is None else now):
        return ""
    return " [muted]" if until >= limits.MAX_DATE else f" [muted until {when(until)}]"


def pinned(chat: Chat) -> str:
    return f" [pinned #{chat.pinned_message_id}]" if chat.pinned_message_id else ""


class SpanType(click.ParamType):
    name = "SPAN"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        try:
            return value if isinstance(value, int) else span(str(value))
        except BadSpan as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.argument("chat")
@click.option("--for", "for_", type=SpanType(), default=None, metavar="SPAN",
              help="How long: 30m, 8h, 2d, 1w (default: until you unmute it).")
@pass_ctx
@run
async def mute(ctx: Ctx, chat: str, for_: int | None) -> None:
    """Mute CHAT on all your devices, for a while (--for) or until `pigeon unmute`."""
    until = limits.MAX_DATE if for_ is None else time.time() + for_
    async with session(ctx) as client:
        result = await client.chats.mute(await resolve_chat(client, chat), until)
    echo(f"muted chat:{result.id}" + (f" until {when(until)}" if for_ is not None else ""))


@click.command()
@click.argument("chat")
@pass_ctx
@run
async def unmute(ctx: Ctx, chat: str) -> None:
    """Unmute CHAT on all your devices."""
    async with session(ctx) as client:
        result = await client.chats.unmute(await resolve_chat(client, chat))
    echo(f"unmuted chat:{result.id}")


@click.command()
@click.argument("chat")
@click.argument("msg_id", type=MESSAGE_ID)
@pass_ctx
@run
async def pin(ctx: Ctx, chat: str, msg_id: int) -> None:
    """Pin message MSG_ID in CHAT for every member (in a group: its owner and admins may)."""
    async with session(ctx) as client:
        result = await client.chats.pin(await resolve_chat(client, chat), msg_id)
    echo(f"pinned #{result.pinned_message_id} in chat:{result.id}")


@click.command()
@click.argument("chat")
@pass_ctx
@run
async def unpin(ctx: Ctx, chat: str) -> None:
    """Unpin CHAT's pinned message, for every member."""
    async with session(ctx) as client:
        result = await client.chats.unpin(await resolve_chat(client, chat))
    echo(f"unpinned chat:{result.id}")


COMMANDS = (mute, unmute, pin, unpin)
