"""Talking to a running server's operator listener (``operator_listen``, loopback by default):
shared by ``pigeon shield status`` and ``pigeon admin ...``."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
import click

from .context import EXIT_FAILED, EXIT_UNREACHABLE
from .output import visible

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_OPERATOR = "http://127.0.0.1:8701"


class OperatorError(Exception):
    """The operator listener answered, but refused or did not understand."""


def operator_options(fn: F) -> F:
    """``--operator URL`` and ``--token T`` (or their environment variables)."""
    fn = click.option("--token", envvar="PIGEON_OPERATOR_TOKEN", default=None,
                      help="The operator token, if the server has one "
                           "[env PIGEON_OPERATOR_TOKEN].")(fn)
    return click.option(  # type: ignore[no-any-return]
        "--operator", "--server", "server", envvar="PIGEON_OPERATOR", default=DEFAULT_OPERATOR,
        show_default=True, help="The server's operator listener (its operator_listen "
        "setting; not the public port) [env PIGEON_OPERATOR].")(fn)


def http_url(server: str) -> str:
    url = server.rstrip("/")
    for ws, http in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(ws):
            url = http + url[len(ws):]
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url.removesuffix("/v1/ws")


async def call(server: str, token: str | None, path: str, *, body: dict[str, Any] | None = None,
               params: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    """GET ``path`` (or POST ``body`` as JSON); the answer's JSON, or OperatorError."""
    url = http_url(server)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        method = http.get if body is None else functools.partial(http.post, json=body)
        async with method(url + path, headers=headers, params=params) as response:
            if response.status == 401:
                raise OperatorError("the operator listener wants its token: pass --token or "
                                    "set PIGEON_OPERATOR_TOKEN")
            if response.status == 404 and response.content_type != "application/json":
                raise OperatorError(f"{url} does not serve {path}: point --operator at the "
                                    "server's operator listener (operator_listen, default "
                                    "127.0.0.1:8701), not its public port")
            if response.content_type != "application/json":
                raise OperatorError(f"{url}{path} answered {response.status}: "
                                    f"{(await response.text())[:200]}")
            data = await response.json()
            if response.status >= 400:
                raise OperatorError(f"{data.get('message')} [{data.get('code')}]")
            return data


def run_operator(coro: Any) -> Any:
    """Run one call; one line and the documented exit code on failure."""
    try:
        return asyncio.run(coro)
    except OperatorError as exc:
        click.echo(f"error: {visible(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        click.echo(f"error: server unreachable: {visible(str(exc) or type(exc).__name__)}",
                   err=True)
        sys.exit(EXIT_UNREACHABLE)
