"""``pigeon admin ...``: the operator's tools, run on the server's host (issue 11).

Everything but ``restore`` talks to the running server through its operator listener
(``operator_listen``, loopback by default; ``--token`` if it has one): the server holds an
exclusive lock on its data directory, and only it may write there. ``restore`` is the
opposite: it needs the data directory to itself, so it takes that same lock and refuses while
a server runs there.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import NoReturn

import click

from pigeon.server.datadir import DataDirError, lock_data_dir, prepare_data_dir, private_umask
from pigeon.server.services import SECRET_FILE
from pigeon.server.settings import Settings
from pigeon.store.sqlite_admin import restore as restore_database

from .context import EXIT_FAILED
from .operator import call, operator_options, run_operator
from .output import echo, visible, when


@click.group()
def admin() -> None:
    """The operator's tools: backups, abuse reports, accounts. Run on the server's host."""


@admin.command("backup")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@operator_options
def backup(path: Path, server: str, token: str | None) -> None:
    """Copy the running server's database to PATH (a new file; the login-code key goes to
    PATH.key). Consistent, and no stop needed: SQLite's online backup API."""
    done = run_operator(call(server, token, "/admin/backup", body={"path": str(path.resolve())},
                             timeout=3600))
    echo(f"backed up {done['bytes']} bytes to {visible(done['path'])} (and "
         f"{visible(str(done['key']))}); restore with: pigeon admin restore "
         f"{visible(done['path'])} --data DIR")


@admin.command("restore")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The data directory to restore into (stopped server; no pigeon.db yet).")
def restore(path: Path, data: Path) -> None:
    """Bring back a backup made by `pigeon admin backup` into the data directory DATA,
    checked and migrated to this version's schema. The server must not be running there."""
    private_umask()
    try:
        prepare_data_dir(data)
        lock = lock_data_dir(data)
    except DataDirError as exc:
        _fail(str(exc).replace("refusing to start", "refusing to restore"))
    try:
        target = Settings(data=data).db_path
        if target.exists():
            _fail(f"{target} exists: restore into an empty data directory (move that one away)")
        version = restore_database(path, target)
        key = path.with_name(path.name + ".key")
        if key.exists():
            (data / SECRET_FILE).write_bytes(key.read_bytes())
    except (sqlite3.DatabaseError, OSError) as exc:
        _fail(f"cannot restore {path}: {exc}")
    finally:
        os.close(lock)
    echo(f"restored {visible(str(path))} into {visible(str(data))} (schema version {version}); "
         f"start it with: pigeon serve --data {visible(str(data))}")


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {visible(message)}", err=True)
    raise SystemExit(EXIT_FAILED)


@admin.command("reports")
@click.option("--after", type=click.IntRange(0, 2**62), default=0,
              help="Only reports after this id (to page on, or to see the new ones).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@operator_options
def reports(after: int, limit: int, as_json: bool, server: str, token: str | None) -> None:
    """List abuse reports (`pigeon report`), oldest first."""
    rows = run_operator(call(server, token, "/admin/reports",
                             params={"after": str(after), "limit": str(limit)}))
    for r in rows:
        if as_json:
            echo(json.dumps(r))
        else:
            reason = f" because \"{visible(r['reason'])}\"" if r["reason"] else ""
            echo(f"report {r['id']} {when(r['date'])}: user:{r['reporter_id']} reported "
                 f"chat:{r['chat_id']} #{r['message_id']} by user:{r['sender_id']}{reason}: "
                 f"{visible(r['text'])}")
    if not rows and not as_json:
        echo("no reports" + (f" after {after}" if after else ""))


@admin.group("users")
def users() -> None:
    """Find, disable, enable and delete accounts."""


@users.command("find")
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@operator_options
def users_find(query: str, limit: int, server: str, token: str | None) -> None:
    """Accounts whose id (or user:ID), phone, @username or name matches QUERY."""
    rows = run_operator(call(server, token, "/admin/users",
                             params={"q": query, "limit": str(limit)}))
    for u in rows:
        username = f" @{visible(u['username'])}" if u["username"] else ""
        state = "  DISABLED" if u["disabled"] else ""
        echo(f"user:{u['id']} {visible(u['phone'])} {visible(u['name'])}{username}  "
             f"{u['sessions']} session(s){state}")
    if not rows:
        echo("no account matches")


def _user_id(ref: str) -> int:
    raw = ref.removeprefix("user:")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 2**62:
        raise click.UsageError(f"{ref!r} is not user:ID (find it with: pigeon admin users find)")
    return int(raw)


def _act(action: str, ref: str, server: str, token: str | None) -> None:
    done = run_operator(call(server, token, f"/admin/users/{action}",
                             body={"user_id": _user_id(ref)}))
    echo(f"{action}d user:{done['user_id']}; {done['sessions_ended']} session(s) ended")


@users.command("disable")
@click.argument("user", metavar="user:ID")
@operator_options
def users_disable(user: str, server: str, token: str | None) -> None:
    """Disable an account: its devices are logged out at once and it cannot log in."""
    _act("disable", user, server, token)


@users.command("enable")
@click.argument("user", metavar="user:ID")
@operator_options
def users_enable(user: str, server: str, token: str | None) -> None:
    """Let a disabled account log in again."""
    _act("enable", user, server, token)


@users.command("delete")
@click.argument("user", metavar="user:ID")
@click.option("--yes", is_flag=True, required=True,
              help="Confirm: the account's phone, name, username, contacts and sessions go "
                   "for good; its messages stay, signed \"Deleted account\".")
@operator_options
def users_delete(user: str, yes: bool, server: str, token: str | None) -> None:
    """Delete an account for good (its devices are logged out at once)."""
    _act("delete", user, server, token)
