"""``pigeon shield status``: what the shield of a running server is doing."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import click

from .output import echo


@click.group()
def shield() -> None:
    """The shield that keeps logged-in users served under attack."""


def _http_url(server: str) -> str:
    url = server.rstrip("/")
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            url = http + url[len(ws):]
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url.removesuffix("/v1/ws")


class OperatorError(Exception):
    """The operator listener answered, but not with the shield's status."""


async def _fetch(url: str, token: str | None) -> dict:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(url + "/shield", headers=headers) as response:
            if response.status == 401:
                raise OperatorError("the operator listener wants its token: pass --token or "
                                    "set PIGEON_OPERATOR_TOKEN")
            if response.status == 404:
                raise OperatorError(f"{url} does not serve /shield: point --operator at the "
                                    "server's operator listener (operator_listen, default "
                                    "127.0.0.1:8701), not its public port")
            response.raise_for_status()
            return await response.json()  # type: ignore[no-any-return]


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
@click.option("--operator", "--server", "server", envvar="PIGEON_OPERATOR",
              default="http://127.0.0.1:8701", show_default=True,
              help="The server's operator listener (its operator_listen setting; not the "
                   "public port) [env PIGEON_OPERATOR].")
@click.option("--token", envvar="PIGEON_OPERATOR_TOKEN", default=None,
              help="The operator token, if the server has one [env PIGEON_OPERATOR_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="The raw status as JSON.")
@click.option("--watch", type=float, default=None, metavar="SECONDS",
              help="Print again every SECONDS until interrupted.")
def status(server: str, token: str | None, as_json: bool, watch: float | None) -> None:
    """A live summary: admission, work classes, proof of work, bans, refusals."""
    url = _http_url(server)
    while True:
        try:
            data = asyncio.run(_fetch(url, token))
        except OperatorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            click.echo(f"error: server unreachable: {exc}", err=True)
            sys.exit(3)
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
