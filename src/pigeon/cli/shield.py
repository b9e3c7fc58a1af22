"""``pigeon shield status``: what the shield of a running server is doing."""

from __future__ import annotations

import asyncio
import json

import click

from .operator import call, operator_options, run_operator
from .output import echo


@click.group()
def shield() -> None:
    """The shield that keeps logged-in users served under attack."""


def render(status: dict) -> list[str]:  # type: ignore[type-arg]
    adm = status["admission"]
    lines = [
        f"shield: {'on' if status['enabled'] else 'OFF'}",
        f"connections: {adm['open']} open ({adm['authenticated']} logged in, "
        f"{adm['unauthenticated']} not), {adm['evicted']} idlers evicted, refused at accept: "
        + ", ".join(f"{k} {v}" for k, v in adm["refused"].items()),
        f"proof of work: {status['pow_difficulty']} bits; event-loop lag "
        f"{status.get('loop_lag', 0.0) * 1000:.0f} ms",
        "work classes:",
    ]
    for name, c in status["classes"].items():
        lines.append(
            f"  {name:<16} running {c['running']:>4}/{c['budget']:<4} queued {c['queued']:>5}  "
            f"admitted {c['admitted']:>8}  shed {c['shed']:>7}  "
            f"queue delay {c['queue_delay'] * 1000:7.1f} ms{'  SHEDDING' if c['dropping'] else ''}")
    bans = status["bans"]
    lines.append(f"bans: {bans['banned_addresses']} addresses, {bans['banned_prefixes']} prefixes, "
                 f"{bans.get('banned_sessions', 0)} sessions, {bans.get('banned_accounts', 0)} "
                 f"accounts now; {bans['bans']} address bans so far")
    refused = status["refused"]
    if refused:
        lines.append("refused by the shield: " + ", ".join(f"{k} {v}" for k, v in refused.items()))
    return lines


@shield.command("status")
@operator_options
@click.option("--json", "as_json", is_flag=True, help="The raw status as JSON.")
@click.option("--watch", type=float, default=None, metavar="SECONDS",
              help="Print again every SECONDS until interrupted.")
def status(server: str, token: str | None, as_json: bool, watch: float | None) -> None:
    """A live summary: admission, work classes, proof of work, bans, refusals."""
    while True:
        data = run_operator(call(server, token, "/shield"))
        if as_json:
            echo(json.dumps(data))
        else:
            for line in render(data):
                echo(line)
        if watch is None:
            return
        try:
            asyncio.run(asyncio.sleep(watch))
        except KeyboardInterrupt:
            return
        echo("")
