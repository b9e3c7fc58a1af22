"""``pigeon block|unblock|blocked``, ``pigeon report``, ``pigeon contacts ...`` and
``pigeon requests ...`` (issue 11)."""

from __future__ import annotations

import click

from pigeon.client import Client
from pigeon.protocol.types import User

from .context import Ctx, resolve_chat, resolve_user, run, session
from .output import echo, message_line, visible, when, who

pass_ctx = click.make_pass_decorator(Ctx)
WHO_CAN_MESSAGE = click.Choice(["everyone", "contacts", "nobody"])


def _user(user: User) -> str:
    phone = f" {visible(user.phone)}" if user.phone else ""
    return f"user:{user.id} {who(user, user.id)}{phone}"


# -- blocks and reports -------------------------------------------------------------------------
@click.command()
@click.argument("user")
@pass_ctx
@run
async def block(ctx: Ctx, user: str) -> None:
    """Block USER (@username or user:ID): their private messages and calls to add you to
    groups stop reaching you. They are not told."""
    async with session(ctx) as client:
        user_id = await resolve_user(client, user)
        await client.safety.block(user_id)
    echo(f"blocked user:{user_id}")


@click.command()
@click.argument("user")
@pass_ctx
@run
async def unblock(ctx: Ctx, user: str) -> None:
    """Unblock USER (@username or user:ID). What they sent meanwhile stays hidden."""
    async with session(ctx) as client:
        user_id = await resolve_user(client, user)
        await client.safety.unblock(user_id)
    echo(f"unblocked user:{user_id}")


@click.command()
@pass_ctx
@run
async def blocked(ctx: Ctx) -> None:
    """List the people you blocked, newest first."""
    shown = 0
    async with session(ctx) as client:
        async for user in client.safety.all_blocked():
            echo(_user(user))
            shown += 1
    if not shown:
        echo("you blocked nobody")


@click.command()
@click.argument("chat")
@click.argument("message_id", type=click.IntRange(1, 2**62))
@click.option("--reason", default="", help="What is wrong with it (up to 200 characters).")
@pass_ctx
@run
async def report(ctx: Ctx, chat: str, message_id: int, reason: str) -> None:
    """Report message MESSAGE_ID of CHAT to the server's operator as abuse (spam, threats,
    ...). Its text is kept for them as it is now."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.safety.report(chat_id, message_id, reason)
    echo(f"reported chat:{chat_id} #{message_id} to the server's operator")


# -- contacts -----------------------------------------------------------------------------------
@click.group()
def contacts() -> None:
    """Your contacts, the same on every device of your account."""


async def _resolve_person(client: Client, ref: str) -> int:
    """``+NUMBER`` (found only if its owner lets their number be found), @username, user:ID."""
    if ref.startswith("+"):
        return (await client.account.resolve_phone(ref)).id
    return await resolve_user(client, ref)


@contacts.command("add")
@click.argument("person", metavar="+NUMBER|@USER")
@click.option("--name", default="", help="The name you know them by.")
@pass_ctx
@run
async def contacts_add(ctx: Ctx, person: str, name: str) -> None:
    """Add someone by phone number (if they let their number be found), @username or
    user:ID; again to rename them."""
    async with session(ctx) as client:
        contact = await client.contacts.add(await _resolve_person(client, person), name)
    named = f" as \"{visible(contact.name)}\"" if contact.name else ""
    echo(f"added {_user(contact.user)}{named}")


@contacts.command("list")
@pass_ctx
@run
async def contacts_list(ctx: Ctx) -> None:
    """List your contacts, in the order you added them."""
    count = 0
    async with session(ctx) as client:
        async for contact in client.contacts.all():
            named = f" as \"{visible(contact.name)}\"" if contact.name else ""
            echo(f"{_user(contact.user)}{named}")
            count += 1
    if not count:
        echo("no contacts yet: pigeon contacts add +NUMBER|@USER")


@contacts.command("remove")
@click.argument("person", metavar="+NUMBER|@USER")
@pass_ctx
@run
async def contacts_remove(ctx: Ctx, person: str) -> None:
    """Remove someone from your contacts."""
    async with session(ctx) as client:
        user_id = await _resolve_person(client, person)
        await client.contacts.remove(user_id)
    echo(f"removed user:{user_id} from your contacts")


# -- message requests ---------------------------------------------------------------------------
@click.group(invoke_without_command=True)
@click.pass_context
def requests(click_ctx: click.Context) -> None:
    """Messages from strangers, waiting for you to accept or decline them (alone: list)."""
    if click_ctx.invoked_subcommand is None:
        click_ctx.invoke(requests_list)


@requests.command("list")
@pass_ctx
@run
async def requests_list(ctx: Ctx) -> None:
    """List waiting message requests, newest first, with their last message."""
    count = 0
    async with session(ctx) as client:
        async for request in client.requests.all():
            count += 1
            echo(f"chat:{request.chat.id} from {_user(request.peer)} since {when(request.date)}")
            if request.last_message is not None:
                echo(message_line(request.last_message, request.peer, prefix="  "))
    if not count:
        echo("no message requests")


@requests.command("accept")
@click.argument("chat")
@pass_ctx
@run
async def requests_accept(ctx: Ctx, chat: str) -> None:
    """Accept the request in CHAT (chat:ID, or @username of who wrote): the chat joins your
    list and its messages reach your devices (`pigeon receive` shows them)."""
    async with session(ctx) as client:
        accepted = await client.requests.accept(await resolve_chat(client, chat))
    echo(f"accepted chat:{accepted.id}")


@requests.command("decline")
@click.argument("chat")
@pass_ctx
@run
async def requests_decline(ctx: Ctx, chat: str) -> None:
    """Decline the request in CHAT: what they sent, and will send, stays hidden from you.
    They are not told."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        await client.requests.decline(chat_id)
    echo(f"declined chat:{chat_id}")


@requests.command("privacy")
@click.argument("who_can_message", type=WHO_CAN_MESSAGE, required=False)
@pass_ctx
@run
async def requests_privacy(ctx: Ctx, who_can_message: str | None) -> None:
    """Show or set whose first message reaches you directly: everyone; contacts (people
    you know: your contacts, people you wrote to, found or share a group with; strangers'
    arrive as requests); or nobody (strangers cannot write to you at all)."""
    async with session(ctx) as client:
        if who_can_message is None:
            me = await client.account.me()
        else:
            me = await client.account.set_who_can_message(who_can_message)  # type: ignore[arg-type]
    echo(f"who can message you directly: {me.who_can_message}")
