"""``pigeon siege``: attack a server on this machine and measure who stays served."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import click

from pigeon.siege.config import MODES, SiegeConfig, SiegeError


class _Status:
    """Progress on stderr: one line rewritten in place on a terminal, else a line every
    five updates (logs stay readable)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.width = shutil.get_terminal_size((120, 20)).columns - 1
        self._open = False
        self._count = 0

    def __call__(self, text: str, transient: bool) -> None:
        if self.quiet:
            return
        if transient and self.tty:
            click.echo("\r" + text[:self.width].ljust(self.width), nl=False, err=True)
            self._open = True
            return
        self._count += 1
        if transient and self._count % 5:
            return
        self.end()
        click.echo(text, err=True)

    def end(self) -> None:
        if self._open:
            click.echo("", err=True)
            self._open = False


@click.command()
@click.option("--mode", type=click.Choice(MODES), default="mixed", show_default=True,
              help="connect: hold many connections; slowloris: trickle requests byte by byte; "
                   "junk: garbage before and after hello; login: code-request and sign-in "
                   "flood; spam: compromised accounts sending flat out; reconnect: restart "
                   "the server, every client reconnects at once; mixed: the first five together.")
@click.option("--users", default=50, show_default=True, type=int,
              help="Legitimate users; they chat in pairs.")
@click.option("--rate", default=100.0, show_default=True, type=float,
              help="Legitimate messages per second, all users together.")
@click.option("--attackers", default=1000, show_default=True, type=int,
              help="Distinct attacker source addresses (split between the modes of mixed).")
@click.option("--duration", default=20.0, show_default=True, type=float,
              help="Seconds of measured run per server.")
@click.option("--attack-start", default=0.25, show_default=True, type=float,
              help="The attack starts at this fraction of the run ...")
@click.option("--attack-end", default=0.75, show_default=True, type=float,
              help="... and stops at this one (then: recovery).")
@click.option("--clients", default=10_000, show_default=True, type=int,
              help="Reconnect mode: devices in the storm, the legitimate users included.")
@click.option("--server", default=None, metavar="URL",
              help="Attack this server (loopback only) instead of starting one.")
@click.option("--code-log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --server: the file its stderr goes to, to read login codes from.")
@click.option("--server-pid", type=int, default=None,
              help="With --server: its pid, for CPU and memory (else found by port).")
@click.option("--compare", is_flag=True,
              help="Run twice, on `pigeon serve --no-shield` and then with the shield on, "
                   "and show both side by side.")
@click.option("--serve-arg", "serve_args", multiple=True, metavar="ARG",
              help="Pass ARG to the `pigeon serve` this starts (repeatable).")
@click.option("--spam-accounts", default=4, show_default=True, type=int,
              help="Compromised accounts in spam (and mixed) mode.")
@click.option("--conns-per-attacker", default=2, show_default=True, type=int,
              help="Connections each address holds in connect and slowloris modes.")
@click.option("--attack-subnets", default=256, show_default=True, type=int,
              help="/24 prefixes the attacker addresses are spread over.")
@click.option("--slow-interval", default=1.0, show_default=True, type=float,
              help="Slowloris: seconds between bytes.")
@click.option("--logins", default=0.5, show_default=True, type=float,
              help="Legitimate sign-ups per second during the run (0: none).")
@click.option("--newcomers", default=0, show_default=True, type=int,
              help="People who sign up with the SDK during the attack (spread over it); the "
                   "report says how many were logged in within --newcomer-timeout.")
@click.option("--newcomer-timeout", default=10.0, show_default=True, type=float,
              help="Seconds a newcomer may take, from setting out to being logged in.")
@click.option("--timeout", default=5.0, show_default=True, type=float,
              help="A legitimate send succeeds if acknowledged within this many seconds.")
@click.option("--reconnect-timeout", default=90.0, show_default=True, type=float,
              help="Reconnect mode: stop waiting for the storm to settle after this.")
@click.option("--restart", type=click.Choice(["term", "kill"]), default="term",
              show_default=True,
              help="Reconnect mode: how the server goes down. term: a planned restart "
                   "(SIGTERM; the server tells its devices when to come back); kill: an "
                   "outage (kill -9; nobody is told).")
@click.option("--sdk-devices", is_flag=True,
              help="Reconnect mode: the idle devices are SDK clients too (default: the wire "
                   "protocol with the SDK's reconnect policy, lighter on this machine), so the "
                   "SDK's own backoff is what is measured.")
@click.option("--devices-per-process", default=5000, show_default=True, type=int,
              help="Reconnect mode: idle devices one harness process drives; more are split "
                   "over more processes (one event loop driving 10,000 SDK clients was the "
                   "storm's bottleneck, not the server).")
@click.option("--max-sockets", default=8000, show_default=True, type=int,
              help="Refuse attacks needing more attacker sockets at once than this.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write the report (per-second series, totals, parameters).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write a PNG: legitimate success and p99 latency over time.")
@click.option("--per-second/--no-per-second", default=True, show_default=True,
              help="Print the per-second table before the totals.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def siege(json_path: Path | None, plot_path: Path | None, per_second: bool, quiet: bool,
          serve_args: tuple[str, ...], code_log: Path | None, **options: object) -> None:
    """Attack a Pigeon server on this machine and measure whether its users stay served.

    Starts a server (or targets --server), brings up legitimate users who chat at a steady
    rate, and floods it from thousands of loopback addresses (127.0.0.0/8) between
    --attack-start and --attack-end. Reports per second and in total: legitimate success
    rate and latency, attacker work admitted, server CPU and memory. Loopback only,
    bounded in count and time; it stops by itself and stops the servers it started."""
    from pigeon.siege import report
    from pigeon.siege.runner import siege as run_siege

    try:
        cfg = SiegeConfig(serve_args=serve_args, code_log=str(code_log) if code_log else None,
                          **options).validate()  # type: ignore[arg-type]
    except SiegeError as exc:
        raise click.UsageError(str(exc)) from None
    status = _Status(quiet)
    received: list[int] = []

    async def main() -> dict[str, Any]:
        # SIGTERM (and SIGINT) cancel the siege, so that its finally blocks stop the
        # servers and attackers it started; the default SIGTERM would orphan them.
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: int) -> None:
            received.append(sig)
            task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                loop.add_signal_handler(sig, stop, sig)
        return await run_siege(cfg, status)

    try:
        doc = asyncio.run(main())
    except SiegeError as exc:
        status.end()
        raise click.ClickException(str(exc)) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        status.end()
        click.echo("interrupted: the servers and attackers it started are stopped", err=True)
        sys.exit(128 + (received[0] if received else signal.SIGINT))
    status.end()
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
    if plot_path is not None:
        from pigeon.siege.plot import plot

        plot(doc, plot_path)
    click.echo(report.render(doc, per_second=per_second))
    if json_path is not None:
        click.echo(f"report: {json_path}")
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")
