"""The ``pigeon`` command, modelled on signal-cli's verbs.

Exit codes: 0 done; 1 refused or failed (the one-line message says why); 2 usage;
3 server unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pigeon.client import Client, Profile, ServerUnreachable
from pigeon.client.link import ConnectionLost
from pigeon.protocol.errors import PigeonError
from pigeon.protocol.types import Dialog, User
from pigeon.protocol.updates import EditMessage, NewMessage

from .output import echo, message_json, message_line, visible, when, who
from .serve import serve

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
T = TypeVar("T")


class Ctx:
    def __init__(self, profile_dir: Path) -> None:
        self.profile_dir = profile_dir

    def profile(self) -> Profile:
        return Profile.load(self.profile_dir)

    def client(self, server: str | None = None, *, need_login: bool = True,
               track_updates: bool = False) -> Client:
        profile = self.profile()
        if server is None and profile.server is None:
            raise click.UsageError("no server in this profile: run `pigeon register --server URL PHONE`")
        if need_login and profile.token is None:
            raise click.ClickException("not logged in: run `pigeon register` then `pigeon verify`")
        return Client(server, profile, reconnect=True, track_updates=track_updates)


def run(fn: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Run an async command; turn errors into one actionable line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except (ServerUnreachable, ConnectionLost) as exc:
            click.echo(f"error: server unreachable: {visible(exc.message)}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except PigeonError as exc:
            # The message may quote what a peer wrote (a name, a title): made visible too.
            click.echo(f"error: {visible(exc.message)} [{visible(exc.code)}]", err=True)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


@contextlib.asynccontextmanager
async def session(ctx: Ctx, server: str | None = None, need_login: bool = True,
                  track_updates: bool = False) -> AsyncIterator[Client]:
    """A connected client for one command, closed (and its profile saved) afterwards."""
    client = ctx.client(server, need_login=need_login, track_updates=track_updates)
    client.reconnect = False  # the first connection fails fast instead of retrying for ever
    await client.connect()
    client.reconnect = True
    try:
        yield client
    finally:
        await client.close()


async def resolve_chat(client: Client, ref: str) -> int:
    """``@username`` (a private chat with them), ``chat:ID`` or a bare chat id."""
    if ref.startswith("@"):
        user = await client.account.resolve_username(ref)
        return (await client.chats.open_private(user.id)).id
    raw = ref.removeprefix("chat:")
    if not raw.isdigit():
        raise click.UsageError(f"{ref!r} is neither @username nor chat:ID")
    return int(raw)


async def resolve_user(client: Client, ref: str) -> int:
    if ref.startswith("@"):
        return (await client.account.resolve_username(ref)).id
    raw = ref.removeprefix("user:")
    if not raw.isdigit():
        raise click.UsageError(f"{ref!r} is neither @username nor user:ID")
    return int(raw)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", "profile_dir", envvar="PIGEON_PROFILE", type=click.Path(path_type=Path),
              default=Path.home() / ".config" / "pigeon", show_default=True,
              help="Directory holding this device's session and sync state [env PIGEON_PROFILE].")
@click.version_option(package_name="pigeon")
@click.pass_context
def cli(click_ctx: click.Context, profile_dir: Path) -> None:
    """Pigeon: a self-hostable messenger. Start a server with `pigeon serve`."""
    click_ctx.obj = Ctx(profile_dir)


cli.add_command(serve)
pass_ctx = click.make_pass_decorator(Ctx)


@cli.command()
@click.option("--server", required=True, help="Server URL, e.g. http://127.0.0.1:8700")
@click.argument("phone")
@pass_ctx
@run
async def register(ctx: Ctx, server: str, phone: str) -> None:
    """Ask the server to send a login code to PHONE (international form, +CC...)."""
    async with session(ctx, server, need_login=False) as client:
        sent = await client.auth.send_code(phone)
    echo(f"a {sent.length}-digit code is on its way to {phone}; it expires in "
         f"{sent.expires_in // 60} minutes. Next: pigeon verify CODE --name NAME")


@cli.command()
@click.argument("code")
@click.option("--name", help="Your display name (needed when the number is new).")
@click.option("--device", default="pigeon-cli", show_default=True, help="Name of this device.")
@pass_ctx
@run
async def verify(ctx: Ctx, code: str, name: str | None, device: str) -> None:
    """Log in with the CODE that `register` had sent."""
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
    """Take the username NAME (5-32 of a-z, 0-9, _)."""
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
@click.option("--to", "to", required=True, help="@username or chat:ID")
@click.option("--reply-to", type=int, default=None, help="Message id this answers.")
@click.argument("text")
@pass_ctx
@run
async def send(ctx: Ctx, to: str, reply_to: int | None, text: str) -> None:
    """Send TEXT (`-` reads it from standard input). Returns once the server has it on disk."""
    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, to)
        sent = await client.messages.send(chat_id, text, reply_to=reply_to)
    echo(f"sent chat:{sent.message.chat_id} #{sent.message.id}")


class _Names:
    """Caches the names of senders for printing. The server names only people one shares a
    group with, found by username or phone, or who wrote to one (finding 18); the others are
    printed as ``user ID``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.users: dict[int, User | None] = {}

    async def prefetch(self, user_ids: list[int]) -> None:
        """One users.get for many (people the server does not let us see stay unknown)."""
        wanted = sorted({u for u in user_ids if u not in self.users})[:100]
        if wanted:
            for user in await self.client.account.users(wanted):
                self.users[user.id] = user
            for user_id in wanted:
                self.users.setdefault(user_id, None)

    async def get(self, user_id: int) -> User | None:
        await self.prefetch([user_id])
        return self.users.get(user_id)


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep running and print messages as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_ctx
@run
async def receive(ctx: Ctx, follow: bool, as_json: bool) -> None:
    """Print the messages that arrived since the last `receive` on this profile."""
    async with session(ctx, track_updates=True) as client:
        names = _Names(client)
        await client.sync()  # everything since the last `receive` on this profile

        async def show(update: Any) -> None:
            if isinstance(update, (NewMessage, EditMessage)) and not update.message.deleted:
                msg, edited = update.message, isinstance(update, EditMessage)
                sender = await names.get(msg.sender_id)
                if as_json:
                    echo(message_json(msg, sender, **({"edited": True} if edited else {})))
                else:
                    echo(message_line(msg, sender))
                sys.stdout.flush()

        # The profile is saved after printing: a crash repeats a line rather than losing one.
        for update in client.take_updates():
            await show(update)
        client.save()
        if follow:
            shown = client.profile.pts
            try:
                async for update in client.updates():
                    await show(update)
                    if update.pts:
                        shown = update.pts
                        client.profile.save(pts=shown)
            finally:
                # Closing saves the profile: only as far as what was printed.
                client.profile.pts = min(client.profile.pts, shown)


@cli.command()
@pass_ctx
@run
async def chats(ctx: Ctx) -> None:
    """List your chats, most recent first (all of them, a page at a time)."""
    async with session(ctx) as client:
        names = _Names(client)
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
        kind = "group" if chat.kind == "group" else "unknown kind"
        title = f"{visible(chat.title)} ({kind}, {chat.member_count} members, you: {chat.role})"
    last = f" — '{visible(d.last_message.text[:60])}'" if d.last_message else ""
    unread = f" [{d.unread_count} unread]" if d.unread_count else ""
    echo(f"chat:{chat.id}  {title}{unread}{last}")


@cli.command()
@click.argument("chat")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100))
@click.option("--before", type=int, default=None, help="Page back from this message id.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--mark-read/--no-mark-read", default=True, show_default=True)
@pass_ctx
@run
async def history(ctx: Ctx, chat: str, limit: int, before: int | None, as_json: bool,
                  mark_read: bool) -> None:
    """Show the messages of CHAT (@username or chat:ID), oldest first."""
    async with session(ctx) as client:
        chat_id = await resolve_chat(client, chat)
        messages = await client.messages.history(chat_id, before_id=before, limit=limit)
        names = _Names(client)
        for msg in reversed(messages):
            sender = await names.get(msg.sender_id)
            echo(message_json(msg, sender) if as_json else message_line(msg, sender))
        if mark_read and messages:
            await client.messages.read(chat_id, messages[0].id)


from .groups import group, sessions  # noqa: E402  (they use the helpers above)

from .shield import shield  # noqa: E402

cli.add_command(group)
cli.add_command(sessions)
cli.add_command(shield)

from .siege import siege  # noqa: E402

cli.add_command(siege)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_FAILED)
    sys.exit(0)


__all__ = ["cli", "main", "when", "json"]
