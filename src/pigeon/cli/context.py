"""What every CLI command shares: the profile context, running an async command with one-line
errors and exit codes, a connected session, and resolving @username / user:ID / chat:ID.

Its own module so that ``main`` and the command groups (``groups``, ``receive``) import it
rather than each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import getpass
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pigeon.client import Client, Profile, ServerUnreachable
from pigeon.client.devices import VAULT_FILE
from pigeon.client.link import ConnectionLost
from pigeon.client.profile import resolve_profile
from pigeon.protocol import limits
from pigeon.protocol.errors import InvalidArgument, PigeonError, Unauthorized
from pigeon.protocol.types import SentMessage

from .args import BadMessageId, message_id
# Re-exported: the exit codes live in exits.py, which `pigeon serve` loads without the rest.
from .exits import EXIT_FAILED as EXIT_FAILED, EXIT_UNREACHABLE as EXIT_UNREACHABLE
from .exits import EXIT_USAGE as EXIT_USAGE
from .output import visible

T = TypeVar("T")


class Ctx:
    def __init__(self, profile_ref: str | None, by_flag: bool, ca_file: Path | None,
                 passphrase_file: Path | None = None) -> None:
        self.passphrase_file = passphrase_file
        self.profile_ref = profile_ref
        self.profile_dir = resolve_profile(profile_ref)
        self.by_flag = by_flag  # given as --profile (not from PIGEON_PROFILE, not the default)
        self.ca_file = ca_file

    def profile(self) -> Profile:
        profile = Profile.load(self.profile_dir)
        if self.ca_file is not None:
            profile.ca_file = str(self.ca_file.resolve())  # remembered for later commands
        return profile

    def passphrase(self) -> str:
        """The passphrase of this device's end-to-end keys: from --passphrase-file (or
        PIGEON_PASSPHRASE_FILE), else asked on the terminal; PASSPHRASE_REQUIRED otherwise."""
        if self.passphrase_file is not None:
            text = self.passphrase_file.read_text(encoding="utf-8").rstrip("\r\n")
            if not text:
                raise Unauthorized(f"{visible(str(self.passphrase_file))} is empty: put the "
                                   "passphrase in it", code="PASSPHRASE_REQUIRED")
            return text
        if sys.stdin.isatty():
            return getpass.getpass("passphrase for this device's secret chats: ")
        raise Unauthorized("secret chats need this device's passphrase: pass "
                           "--passphrase-file PATH (or set PIGEON_PASSPHRASE_FILE)",
                           code="PASSPHRASE_REQUIRED")

    def has_secrets(self) -> bool:
        """Whether this profile holds end-to-end keys (so `receive` looks for secrets)."""
        return (self.profile_dir / VAULT_FILE).exists()

    def command(self, verb: str) -> str:
        """``pigeon [--profile P] VERB``: how to run VERB on this same profile."""
        flag = f"--profile {shlex.quote(self.profile_ref)} " if self.by_flag and \
            self.profile_ref else ""
        return f"pigeon {flag}{verb}"

    def client(self, server: str | None = None, *, need_login: bool = True,
               track_updates: bool = False) -> Client:
        profile = self.profile()
        if need_login and profile.token is None:
            raise self.not_logged_in(profile)
        if server is None and profile.server is None:
            raise click.UsageError(
                f"no server in this profile: run `{self.command('register --server URL PHONE')}`")
        return Client(server, profile, reconnect=True, track_updates=track_updates)

    def not_logged_in(self, profile: Profile) -> Unauthorized:
        again = self.command("register --server URL PHONE")
        if profile.ended:  # the server ended the session: say so, not just "not logged in"
            return Unauthorized(f"{profile.ended}; to log in again: {again}",
                                code="SESSION_INVALID")
        return Unauthorized(f"not logged in: run `{again}`, then `{self.command('verify CODE')}`",
                            code="AUTH_REQUIRED")


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
        except OSError as exc:  # the profile or a file named on the command line
            click.echo(f"error: {os_error(exc)}", err=True)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


def os_error(exc: OSError) -> str:
    """``cannot use PATH: No space left on device [ENOSPC]``."""
    where = f" {visible(str(exc.filename))}" if exc.filename is not None else ""
    code = errno.errorcode.get(exc.errno or 0, "OS_ERROR")
    return f"cannot use{where}: {visible(exc.strerror or str(exc))} [{code}]"


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


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
        try:
            await client.close()
        except OSError as exc:
            # What the command did is done (a message sent is sent): saving where the sync
            # stands failed, which costs at most a message shown twice. Issue 11, bug 1.
            warn(f"the profile was not saved: {os_error(exc)}")


async def resolve_chat(client: Client, ref: str) -> int:
    """``@username`` or ``user:ID`` (a private chat with them), ``chat:ID`` or a bare id."""
    if ref.startswith(("@", "user:")):
        return (await client.chats.open_private(await resolve_user(client, ref))).id
    return chat_id_of(ref)


def chat_id_of(ref: str) -> int:
    """``chat:ID`` or a bare id, read without asking the server."""
    raw = ref.removeprefix("chat:")
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit, not to int
        raise click.UsageError(f"{ref!r} is neither @username, user:ID nor chat:ID")
    return int(raw)


async def resolve_user(client: Client, ref: str) -> int:
    if ref.startswith("@"):
        return (await client.account.resolve_username(ref)).id
    raw = ref.removeprefix("user:")
    if not (raw.isascii() and raw.isdigit()):
        raise click.UsageError(f"{ref!r} is neither @username nor user:ID")
    return int(raw)


async def sent_from_here(client: Client, chat_id: int,
                         send: Callable[[], Awaitable[SentMessage]]) -> SentMessage:
    """Run ``send`` (a send or a forward to ``chat_id``) marked in the profile, so that
    `receive` on this device does not show the message back (issue 11, bug 8)."""
    mark = client.profile.begin_send(chat_id)
    pts = None
    try:
        sent = await send()
        pts = sent.pts
    finally:
        try:
            client.profile.end_send(mark, pts)
        except OSError as exc:  # the message is sent: a profile that cannot be written
            warn(f"the profile was not saved: {os_error(exc)}")  # must not say otherwise
    return sent


def message_text(text: str) -> str:
    """A message's TEXT argument: ``-`` reads it from standard input; too long is refused in
    words before anything is sent (issue 11, bug 8: a raw validator message)."""
    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    if len(text) > limits.MAX_TEXT_CHARS:
        raise InvalidArgument(f"a message can be at most {limits.MAX_TEXT_CHARS:,} characters; "
                              f"this one has {len(text):,}")
    return text


class MessageIdType(click.ParamType):
    """MSG_ID on the command line: ``#12`` as the CLI prints it, or ``12``."""

    name = "MSG_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return message_id(str(value))
        except BadMessageId as exc:
            self.fail(str(exc), param, ctx)


MESSAGE_ID = MessageIdType()
