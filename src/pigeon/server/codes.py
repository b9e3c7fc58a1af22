"""Delivery of login codes: ``console`` prints them (development, small private servers);
``webhook`` POSTs them to an SMS gateway of the operator's choosing."""

from __future__ import annotations

import sys
from typing import Protocol

import aiohttp

from pigeon.protocol.errors import Unavailable


class CodeSender(Protocol):
    async def send(self, phone: str, code: str, expires_in: int) -> None: ...

    async def close(self) -> None: ...


class ConsoleSender:
    """Prints ``login code for +<number>: <code>`` to stderr, for the operator to pass on."""

    async def send(self, phone: str, code: str, expires_in: int) -> None:
        print(f"login code for {phone}: {code}", file=sys.stderr, flush=True)

    async def close(self) -> None:
        pass


class WebhookSender:
    """POSTs ``{"phone", "code", "expires_in"}`` as JSON; any non-2xx answer is a failure the
    requesting user hears about (UNAVAILABLE), so a broken gateway is noticed at once."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, phone: str, code: str, expires_in: int) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"phone": phone, "code": code, "expires_in": expires_in}
        try:
            async with self._session.post(self.url, json=body) as response:
                if response.status >= 300:
                    raise Unavailable(f"the code gateway answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"the code gateway is unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_sender(kind: str, url: str | None) -> CodeSender:
    if kind == "webhook":
        assert url is not None
        return WebhookSender(url)
    return ConsoleSender()
