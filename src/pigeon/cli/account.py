"""``pigeon profile``, ``pigeon privacy`` and ``pigeon logout``: the account itself."""

from __future__ import annotations

import click

from .context import Ctx, run, session
from .output import echo, visible

pass_ctx = click.make_pass_decorator(Ctx)


@click.group("profile")
def profile_group() -> None:
    """What others see of you."""


@profile_group.command("name")
@click.argument("name")
@pass_ctx
@run
async def profile_name(ctx: Ctx, name: str) -> None:
    """Change your display NAME (as people who can see you see it)."""
    async with session(ctx) as client:
        user = await client.account.set_name(name)
    echo(f"your name is now {visible(user.name)}")


@click.group()
def privacy() -> None:
    """Who may find you (who may add you to groups: `pigeon group privacy`)."""


@privacy.command("phone-discoverable")
@click.argument("state", type=click.Choice(["on", "off"]), required=False)
@pass_ctx
@run
async def privacy_phone(ctx: Ctx, state: str | None) -> None:
    """Show, or set (on|off), whether people who know your phone number can find you by it."""
    async with session(ctx) as client:
        if state is None:
            me = await client.account.me()
        else:
            me = await client.account.set_phone_discoverable(state == "on")
    echo(f"phone discoverable: {'on' if me.phone_discoverable else 'off'}")


@click.command()
@pass_ctx
@run
async def logout(ctx: Ctx) -> None:
    """End this device's session on the server and forget it here (its sync state too)."""
    async with session(ctx) as client:
        await client.auth.log_out()
    echo(f"logged out; to log in again: {ctx.command('register --server URL PHONE')}")


COMMANDS = (profile_group, privacy, logout)
