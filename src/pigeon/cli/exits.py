"""The `pigeon` command's exit codes and one-line errors, in a module that imports nothing
but click: `pigeon serve` runs through it without loading the other commands
(``pigeon/__main__.py``)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


def run(command: click.Command, prog_name: str, args: list[str] | None = None) -> NoReturn:
    """Run a click command as `pigeon` does: exit 0, or one line and the exit code."""
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as exc:
        # One line, as every other failure (issue 11, bug 6), pointing at the help.
        path = exc.ctx.command_path if exc.ctx is not None else prog_name
        click.echo(f"error: {exc.format_message()} (see `{path} --help`)", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(0)
