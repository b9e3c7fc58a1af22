"""The ``pigeon`` command, modelled on signal-cli's verbs.

Exit codes: 0 done; 1 refused or failed (the one-line message says why); 2 usage;
3 server unreachable. Every failure is one line on stderr (issue 11, bug 6), ending with a
stable code in brackets where there is one.
"""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import click

from pigeon.client import Profile
from pigeon.client.profile import (
    PROFILE_FILE, is_profile_name, list_profiles,
)
from pigeon.protocol import limits
from pigeon.protocol.errors import Unauthorized
from pigeon.protocol.types import Dialog, User

from .args import BadServerUrl, server_url
from .exits import run as run_command
from .context import (
    MESSAGE_ID, Ctx, message_text, resolve_chat, run, sent_from_here,
    session, warn,
)
from .admin import admin
from .devices import devices
from . import account, chat_settings, messages, secret_groups
from . import secret as secret_cli
from .chat_settings import muted, pinned
from .groups import group, sessions
from .names import Names
from .output import duration, echo, plural, visible, when, who
from .media import download, upload
from .receive import receive
from .safety import block, blocked, contacts, report, requests, unblock
from .search import keep, search
from .serve import serve
from .shield import shield
from .stickers import send_sticker, stickers
from .siege import siege


def _server_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return server_url(value)
    except BadServerUrl as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", "profile_ref", envvar="PIGEON_PROFILE", default=None,
              metavar="NAME|PATH",
              help="This device's session and sync state: a NAME is kept in "
                   "~/.config/pigeon/profiles/NAME ($XDG_CONFIG_HOME is honoured), a PATH (with "
                   "a slash) is that directory; default: ~/.config/pigeon. `pigeon profiles` "
                   "lists them [env PIGEON_PROFILE].")
@click.option("--ca-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              envvar="PIGEON_CA_FILE", default=None,
              help="PEM certificate(s) to trust for the server's TLS, e.g. a self-signed "
                   "server's own; remembered in the profile [env PIGEON_CA_FILE].")
@click.option("--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
              envvar="PIGEON_PASSPHRASE_FILE", default=None, metavar="PATH",
              help="A file holding the passphrase that this device's end-to-end keys and "
                   "secret chats are stored under; without it, a terminal asks "
                   "[env PIGEON_PASSPHRASE_FILE].")
@click.version_option(package_name="pigeon")
@click.pass_context
def cli(click_ctx: click.Context, profile_ref: str | None, ca_file: Path | None,
        passphrase_file: Path | None) -> None:
    """Pigeon: a self-hostable messenger. Start a server with `pigeon serve`."""
    try:
        ctx = Ctx(profile_ref, by_flag=click_ctx.get_parameter_source("profile_ref")
                  is click.core.ParameterSource.COMMANDLINE, ca_file=ca_file,
                  passphrase_file=passphrase_file)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--profile") from None
    click_ctx.obj = ctx
    if profile_ref and is_profile_name(profile_ref) \
            and not (ctx.profile_dir / PROFILE_FILE).exists() \
            and (Path(profile_ref) / PROFILE_FILE).exists():
        # Before issue 11 (bug 4) a name was a directory in the current one.
        warn(f"--profile {profile_ref} now means {ctx.profile_dir}; the profile in "
             f"./{profile_ref} is not used (pass --profile ./{profile_ref}, or move it there)")


cli.add_command(serve)
pass_ctx = click.make_pass_decorator(Ctx)


@cli.command("profiles")
def profiles() -> None:
    """List the profiles on this computer (named ones and the default)."""
    found = list_profiles()
    if not found:
        echo("no profiles yet: `pigeon --profile NAME register --server URL PHONE` makes one")
    for name, path in found:
        profile = Profile.load(path)
        if profile.token:
            state = f"user {profile.user_id}, {visible(profile.phone or '')} on {profile.server}"
        elif profile.ended:
            state = f"logged out ({visible(profile.ended)})"
        else:
            state = "not logged in"
        echo(f"{name}  {path}  {state}")


@cli.command()
@click.option("--server", required=True, callback=_server_option,
              help="Server URL, e.g. http://127.0.0.1:8700 or https://chat.example.org")
@click.option("--sms", is_flag=True,
              help="Send the code by SMS even if this number is logged in on other devices.")
@click.argument("phone")
@pass_ctx
@run
async def register(ctx: Ctx, server: str, sms: bool, phone: str) -> None:
    """Ask the server to send a login code to PHONE (international form, +CC...).

    If the number's account is logged in on other devices, the code goes there, as a message
    from "Pigeon"; otherwise (or with --sms) by SMS."""
    async with session(ctx, server, need_login=False) as client:
        sent = await client.auth.send_code(phone, sms=sms)
    if sent.delivery == "app":
        again = ctx.command(f"register --sms --server {shlex.quote(server)} {shlex.quote(phone)}")
        echo(f"a {sent.length}-digit code was sent to your other logged-in devices, as a "
             f"message from \"Pigeon\"; it expires in {duration(sent.expires_in)}. Next: "
             f"{ctx.command('verify CODE')} (no device at hand? {again})")
    else:
        echo(f"a {sent.length}-digit code is on its way to {phone} by SMS; it expires in "
             f"{duration(sent.expires_in)}. Next: {ctx.command('verify CODE --name NAME')}")


def default_device() -> str:
    """This computer's host name, as the sessions list shows it (issue 11, bug 8)."""
    return socket.gethostname().strip()[:limits.MAX_NAME_CHARS] or "pigeon-cli"


@cli.command()
@click.argument("code")
@click.option("--name", help="Your display name (needed when the number is new).")
@click.option("--device", default=default_device, show_default="this computer's host name",
              help="Name of this device in `pigeon sessions list`.")
@pass_ctx
@run
async def verify(ctx: Ctx, code: str, name: str | None, device: str) -> None:
    """Log in with the CODE that `register` had sent."""
    profile = ctx.profile()
    if profile.code_id is None:  # a second `verify` was a ValueError and a traceback (bug 6)
        already = f"this profile is logged in as user {profile.user_id}; " if profile.token else ""
        raise Unauthorized(f"{already}no login code is waiting here (it was used, or none was "
                           f"asked for): run `{ctx.command('register --server URL PHONE')}` "
                           "first", code="CODE_EXPIRED")
    async with session(ctx, need_login=False) as client:
        auth = await client.auth.sign_in(code, name=name, device=device)
    echo(f"logged in as {who(auth.user, auth.user.id)}, user {auth.user.id}, "
         f"session {auth.session_id}")


@cli.command()
@pass_ctx
@run
async def whoami(ctx: Ctx) -> None:
    """Show the account this profile is logged in to."""
    async with session(ctx) as client:
        me = await client.account.me()
    echo(f"{who(me.user, me.user.id)}, user {me.user.id}, phone {visible(me.phone)}"
         f"{' (discoverable)' if me.phone_discoverable else ''}, server {client.profile.server}")


@cli.group()
def username() -> None:
    """Your @username."""


@username.command("set")
@click.argument("name")
@pass_ctx
@run
async def username_set(ctx: Ctx, name: str) -> None:
    """Take the username NAME: 5-32 letters (a-z, A-Z), digits and _, starting with a letter.
    It keeps the case you write, but case does not tell names apart: @Carol_2 and @carol_2
    are one name, and people find you by either."""
    async with session(ctx) as client:
        user = await client.account.set_username(name)
    echo(f"you are now @{visible(user.username or '')}")


@username.command("release")
@pass_ctx
@run
async def username_release(ctx: Ctx) -> None:
    """Give up your username."""
    async with session(ctx) as client:
        await client.account.set_username(None)
    echo("username released")


@cli.command()
@click.option("--to", "to", required=True, help="@username, user:ID or chat:ID (with "
              "--secret: @username, user:ID or secret:ID)")
@click.option("--reply-to", type=MESSAGE_ID, default=None, help="Message id this answers.")
@click.option("--sticker", "sticker", default=None, metavar="SET:N",
              help="Send sticker N (from 1) of the set SET instead of text.")
@click.option("--sticker-emoji", "sticker_emoji", default=None, metavar="E",
              help="Send the first sticker with emoji E in your installed sets.")
@click.option("--secret", "is_secret", is_flag=True,
              help="End-to-end encrypted, in the secret chat with the person (started if "
                   "need be): only their devices and yours can read it.")
@click.option("--ttl", type=secret_cli.TTL, default=None, metavar="TIMER",
              help="With --secret: self-destruct this long after it is shown (30s, 5m, 1h, "
                   "2d; 1 second to 1 week). Default: the chat's timer.")
@click.option("--only-verified", is_flag=True,
              help="With --secret: refuse (exit 1, nothing sent) if a device of the person "
                   "or of yours is not verified (`pigeon devices verify`).")
@click.argument("text", required=False)
@pass_ctx
@run
async def send(ctx: Ctx, to: str, reply_to: int | None, sticker: str | None,
               sticker_emoji: str | None, is_secret: bool, ttl: int | None,
               only_verified: bool, text: str | None) -> None:
    """Send TEXT (`-` reads it from standard input), or a sticker. Returns once the server
    has it on disk. In an end-to-end encrypted group it is encrypted on this device (the
    passphrase of its keys: --passphrase-file)."""
    if (text is not None) + (sticker is not None) + (sticker_emoji is not None) != 1:
        raise click.UsageError("give TEXT, --sticker SET:N or --sticker-emoji E (one of them)")
    body = message_text(text) if text is not None else ""
    if is_secret or secret_cli.is_secret_ref(to):
        if reply_to is not None:
            raise click.UsageError("--reply-to is not for secret chats")
        if text is None:
            raise click.UsageError("stickers are not sent in secret chats yet: give TEXT")
        await secret_cli.send_secret(ctx, to, body, ttl, only_verified)
        return
    if ttl is not None:
        raise click.UsageError("--ttl is for secret messages: add --secret")
    if only_verified:
        raise click.UsageError("--only-verified is for secret messages: add --secret")
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, to)
        if not to.startswith(("@", "user:")) and \
                await secret_groups.is_secret_group(client, chat_id):
            if text is None:
                raise click.UsageError("stickers are not sent in end-to-end encrypted groups "
                                       "yet: give TEXT")
            async with secret_groups.unlocked(ctx, client):
                sent = await sent_from_here(client, chat_id, lambda: client.secret_groups.send(
                    chat_id, body, reply_to=reply_to))
        elif text is None:
            sent = await sent_from_here(client, chat_id, lambda: send_sticker(
                client, chat_id, sticker, sticker_emoji))
            await keep(ctx, [(sent.message, None)])
        else:
            sent = await sent_from_here(client, chat_id, lambda: client.messages.send(
                chat_id, body, reply_to=reply_to))
            await keep(ctx, [(sent.message, None)])
        echo(f"sent chat:{sent.message.chat_id} #{sent.message.id}")


@cli.command()
@pass_ctx
@run
async def chats(ctx: Ctx) -> None:
    """List your chats, most recent first (all of them, a page at a time)."""
    async with session(ctx) as client:
        names = Names(client)
        page = await client.chats.list()
        while page:
            await names.prefetch([d.chat.peer_id for d in page if d.chat.peer_id])
            for d in page:
                _print_dialog(d, await names.get(d.chat.peer_id) if d.chat.peer_id else None)
            page = await client.chats.list(after=page[-1])


def _print_dialog(d: Dialog, peer: User | None) -> None:
    chat = d.chat
    if chat.kind == "private":
        title = who(peer, chat.peer_id or 0)
    else:
        # A kind or role from a later protocol version reads "unknown": say so plainly.
        kind = chat.kind if chat.kind in ("group", "supergroup") else "unknown kind"
        secret = ", end-to-end encrypted" if chat.secret else ""
        title = (f"{visible(chat.title)} ({kind}{secret}, "
                 f"{plural(chat.member_count, 'member')}, you: {chat.role})")
    last = f" — '{visible(d.last_message.text[:60])}'" if d.last_message else ""
    if d.last_message is not None and d.last_message.ciphertext is not None:
        last = " — [encrypted]"  # `receive` or `history` decrypt it, with the passphrase
    unread = f" [{d.unread_count} unread]" if d.unread_count else ""
    echo(f"chat:{chat.id}  {title}{unread}{muted(chat)}{pinned(chat)}{last}")


cli.add_command(receive)
cli.add_command(upload)
cli.add_command(download)
cli.add_command(secret_cli.secret)
cli.add_command(search)
cli.add_command(group)
cli.add_command(sessions)
cli.add_command(devices)
cli.add_command(shield)
cli.add_command(stickers)

cli.add_command(siege)
cli.add_command(admin)
for command in (block, unblock, blocked, report, contacts, requests, *messages.COMMANDS,
                *account.COMMANDS, *chat_settings.COMMANDS):
    cli.add_command(command)


def main() -> None:
    run_command(cli, "pigeon")


__all__ = ["cli", "main", "when", "json"]
