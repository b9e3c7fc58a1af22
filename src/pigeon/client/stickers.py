"""The SDK's sticker calls (issue 10): an artist's set, and everyone's installed sets.

Adding a sticker sends its source image by HTTP (``POST /v1/stickers/<name>``) with this
device's session token; every other call goes over the WebSocket. The installed list is
kept in :attr:`Stickers.installed`: the server's answer to an install or uninstall, and every
``stickers_installed`` update, which the server sends to all of the user's devices.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import msgspec

from pigeon.protocol import methods as m
from pigeon.protocol.errors import PigeonError, Unauthorized, error_from_wire
from pigeon.protocol.stickers import FoundSticker, Installed, StickerSet, StickerSetInfo
from pigeon.protocol.types import SentMessage
from pigeon.protocol.updates import StickersInstalled

from .features import new_random_id

if TYPE_CHECKING:
    from .client import Client


#: an upload refused as too fast, or while the server's image workers are busy, is sent
#: again after the wait the server asks for, this many times, if it asks for at most this long
UPLOAD_TRIES = 4
MAX_UPLOAD_WAIT = 30.0


def http_base(ws: str) -> str:
    """The server's HTTP root from its WebSocket URL (``ws://h:p/v1/ws`` -> ``http://h:p``)."""
    url = ws.removesuffix("/v1/ws")
    if url.startswith("wss://"):
        return "https://" + url[6:]
    return "http://" + url.removeprefix("ws://")


class Stickers:
    def __init__(self, client: Client) -> None:
        self._client = client
        #: the user's installed sets, by name, newest last (None: not known yet)
        self.installed: list[str] | None = None

    async def _call(self, method: str, params: m.Params) -> Any:
        return await self._client.call(method, params)

    def seen(self, update: StickersInstalled) -> None:
        """Another device (or this one) changed the installed list."""
        self.installed = list(update.names)

    # -- an artist's set --------------------------------------------------------------------
    async def create(self, name: str, title: str, licence: str = "") -> StickerSet:
        return cast(StickerSet, await self._call("stickers.create_set", m.CreateStickerSet(
            name=name, title=title, licence=licence)))

    async def add(self, name: str, image: bytes | Path, emoji: list[str]) -> StickerSet:
        """Add a sticker made of ``image`` (PNG, WebP, JPEG, GIF; the server normalises it)."""
        data = image if isinstance(image, bytes) else await asyncio.to_thread(image.read_bytes)
        client = self._client
        token = client.profile.token
        if token is None:
            raise Unauthorized("log in first", code="AUTH_REQUIRED")
        session = client.http_session()
        url = f"{http_base(client.url)}/v1/stickers/{quote(name, safe='')}"
        headers = {"Authorization": f"Bearer {token}",
                   "Content-Type": "application/octet-stream"}
        for attempt in range(UPLOAD_TRIES):
            async with session.post(url, data=data, params=[("emoji", e) for e in emoji],
                                    headers=headers) as resp:
                body = await resp.read()
            if resp.status == 200:
                return msgspec.json.decode(body, type=StickerSet)
            error = _http_error(resp.status, body)
            # Refused before any work (rate, busy image workers): safe to send again.
            wait = error.retry_after
            if (error.code not in ("RATE_LIMITED", "OVERLOADED") or wait is None
                    or wait > MAX_UPLOAD_WAIT or attempt == UPLOAD_TRIES - 1):
                raise error
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def remove(self, name: str, index: int) -> StickerSet:
        params = m.RemoveSticker(name=name, index=index)
        return cast(StickerSet, await self._call("stickers.remove", params))

    async def move(self, name: str, index: int, to: int) -> StickerSet:
        params = m.MoveSticker(name=name, index=index, to=to)
        return cast(StickerSet, await self._call("stickers.move", params))

    async def publish(self, name: str) -> StickerSet:
        params = m.PublishStickerSet(name=name)
        return cast(StickerSet, await self._call("stickers.publish", params))

    # -- everyone's -------------------------------------------------------------------------
    async def search(self, query: str, limit: int = 20) -> list[StickerSetInfo]:
        params = m.SearchStickerSets(query=query, limit=limit)
        return cast("list[StickerSetInfo]", await self._call("stickers.search", params))

    async def get(self, name: str) -> StickerSet:
        params = m.GetStickerSet(name=name)
        return cast(StickerSet, await self._call("stickers.get_set", params))

    async def install(self, name: str) -> Installed:
        return self._keep(await self._call("stickers.install", m.InstallStickerSet(name=name)))

    async def uninstall(self, name: str) -> Installed:
        return self._keep(await self._call("stickers.uninstall",
                                           m.UninstallStickerSet(name=name)))

    async def list_installed(self) -> Installed:
        return self._keep(await self._call("stickers.installed", m.ListInstalled()))

    def _keep(self, installed: Installed) -> Installed:
        self.installed = list(installed.names)
        return installed

    async def by_emoji(self, emoji: str, limit: int = 20) -> list[FoundSticker]:
        params = m.FindStickers(emoji=emoji, limit=limit)
        return cast("list[FoundSticker]", await self._call("stickers.by_emoji", params))

    async def send(self, chat_id: int, name: str, index: int, *, reply_to: int | None = None,
                   random_id: int | None = None) -> SentMessage:
        return cast(SentMessage, await self._call("messages.send_sticker", m.SendSticker(
            chat_id=chat_id, name=name, index=index, reply_to=reply_to,
            random_id=new_random_id() if random_id is None else random_id)))


def _http_error(status: int, body: bytes) -> PigeonError:
    try:
        fields = msgspec.json.decode(body)
        return error_from_wire(str(fields["code"]), str(fields["message"]),
                               fields.get("retry_after"))
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        return PigeonError(f"the server answered HTTP {status}", code="INTERNAL")
