"""Issue 7, finding 3: a stranger must not be able to stop someone's sync for good.

Long messages in characters that take four bytes each (emoji) or two (Cyrillic) made one
``get_difference`` answer bigger than the 256 KiB an SDK accepts; the SDK reconnected and
asked again for ever, and ``pigeon receive`` and ``pigeon history`` hung. The server now pages
by bytes and never sends a frame over ``limits.MAX_SERVER_FRAME_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import aiohttp
import msgspec

from pigeon.client import Client, Profile
from pigeon.protocol import limits
from pigeon.protocol import methods as m
from pigeon.protocol.frames import (
    ClientProtocol, ItemsReceived, ResultReceived, UpdatesReceived,
)
from pigeon.protocol.updates import NewMessage
from pigeon.testing import login

EMOJI = "\U0001f600" * limits.MAX_TEXT_CHARS      # 16 KiB of UTF-8: the largest message
CYRILLIC = "ж" * limits.MAX_TEXT_CHARS             # 8 KiB


def pigeon(profile, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pigeon", "--profile", str(profile), *args],
                          capture_output=True, text=True, timeout=timeout)


def ok(profile, *args: str) -> str:
    result = pigeon(profile, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def numbered(i: int, text: str) -> str:
    """``text``, still at full length, told apart by its number."""
    return str(i) + text[len(str(i)):]


async def flood(sender: Client, chat_id: int, texts: list[str]) -> None:
    """Pipelined, as a stranger in a hurry would: the sends land in few commits, and so the
    recipient's pushes pile up within one event-loop turn."""
    await asyncio.gather(*(sender.messages.send(chat_id, numbered(i, t))
                           for i, t in enumerate(texts)))


class RawDevice:
    """A logged-in device that accepts frames of any size and records how big each was."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.pushed: list[Any] = []
        self.protocol = ClientProtocol()
        self._answers: dict[int, asyncio.Future[Any]] = {}

    async def open(self, url: str, token: str) -> RawDevice:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(url.replace("http", "ws") + "/v1/ws",
                                             max_msg_size=0)
        await self.ws.send_bytes(ClientProtocol.hello(token))
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            self.sizes.append(len(msg.data))
            event = self.protocol.receive(msg.data)
            if isinstance(event, UpdatesReceived):
                self.pushed += event.updates
            elif isinstance(event, ItemsReceived):
                self.pushed += [item.body for item in event.items]
            elif isinstance(event, ResultReceived):
                self._answers.pop(event.id).set_result(event.value)
            elif getattr(event, "id", None) in self._answers:
                self._answers.pop(event.id).set_exception(event.error)

    async def call(self, method: str, params: m.Params) -> Any:
        request_id, frame = self.protocol.call(method, params)
        self._answers[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_bytes(frame)
        return await asyncio.wait_for(self._answers[request_id], 30)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        await self.http.close()


async def test_receive_and_history_get_every_long_message(server, phone, tmp_path):
    victim = tmp_path / "victim"
    pv = phone()
    ok(victim, "register", "--server", server.url, pv)
    ok(victim, "verify", server.code_for(pv), "--name", "Victim")
    ok(victim, "username", "set", "victim_big")
    stranger = await login(server, phone(), "Stranger", username="stranger_big")
    try:
        target = await stranger.account.resolve_username("victim_big")
        chat = await stranger.chats.open_private(target.id)
        await flood(stranger, chat.id, [EMOJI] * 20)
    finally:
        await stranger.close()
    got = await asyncio.to_thread(ok, victim, "receive", "--json")
    lines = [json.loads(line) for line in got.splitlines()]
    assert [x["text"] for x in lines] == [numbered(i, EMOJI) for i in range(20)]
    assert await asyncio.to_thread(ok, victim, "receive", "--json") == ""
    shown = await asyncio.to_thread(ok, victim, "history", "@stranger_big", "--limit", "100",
                                    "--json")
    assert [json.loads(line)["id"] for line in shown.splitlines()] == list(range(1, 21))


async def test_the_sdk_syncs_long_cyrillic_messages_live_and_after_being_away(
    server, phone, tmp_path
):
    pv = phone()
    victim = await login(server, pv, "Victim")
    away = Client(server.url, Profile.load(tmp_path / "away"))
    await away.connect()
    await away.auth.send_code(pv, sms=True)
    await away.auth.sign_in(await asyncio.to_thread(server.code_for, pv), device="away")
    await away.close()  # its pts stays where it was: it must catch up on all of them
    stranger = await login(server, phone(), "Stranger")
    texts = [numbered(i, CYRILLIC) for i in range(33)]
    try:
        chat = await stranger.chats.open_private(victim.profile.user_id)
        await flood(stranger, chat.id, [CYRILLIC] * 33)

        async def live() -> list[str]:
            got: list[str] = []
            async for update in victim.updates():
                if isinstance(update, NewMessage):
                    got.append(update.message.text)
                    if len(got) == len(texts):
                        return got
            return got

        assert sorted(await asyncio.wait_for(live(), 60)) == sorted(texts)
        back = Client(None, tmp_path / "away")
        await back.connect()
        try:
            await asyncio.wait_for(back.sync(), 60)
            caught_up = [u.message.text for u in back.take_updates()
                         if isinstance(u, NewMessage)]
            assert sorted(caught_up) == sorted(texts)
            history = await back.messages.history(chat.id, limit=100)
            assert [msg.id for msg in history] == list(range(33, 0, -1))
        finally:
            await back.close()
    finally:
        await stranger.close()
        await victim.close()


async def test_no_frame_the_server_sends_exceeds_the_limit(server, phone):
    victim = await login(server, phone(), "Victim")
    stranger = await login(server, phone(), "Stranger")
    device = await RawDevice().open(server.url, victim.profile.token or "")
    try:
        chat = await stranger.chats.open_private(victim.profile.user_id)
        # Pushed, while the device is online: all in few loop turns.
        await flood(stranger, chat.id, [EMOJI] * 40)
        # A chats list whose last messages are all long: groups anyone can add one to.
        for i in range(18):
            group = await stranger.chats.create_group(f"g{i}", [victim.profile.user_id])
            await stranger.messages.send(group.id, EMOJI)
        for _ in range(200):
            if sum(isinstance(u, NewMessage) for u in device.pushed) == 40 + 18:
                break
            await asyncio.sleep(0.05)
        assert sum(isinstance(u, NewMessage) for u in device.pushed) == 40 + 18
        pts, fetched = 0, []
        while True:
            diff = await device.call("updates.get_difference", m.GetDifference(pts=pts))
            assert diff.updates  # a page is never empty while more remain
            fetched += diff.updates
            if not diff.more:
                break
            pts = diff.state.pts
        assert [u.pts for u in fetched] == list(range(1, len(fetched) + 1))
        page = await device.call("messages.history", m.History(chat_id=chat.id, limit=100))
        assert 0 < len(page) < 40 and page[0].id == 40
        dialogs = await device.call("chats.list", m.ListChats())
        assert 0 < len(dialogs) < 19  # cut by bytes, not by count
        while page := await device.call("chats.list", m.ListChats(
                offset_date=dialogs[-1].date, offset_chat_id=dialogs[-1].chat.id)):
            dialogs += page
        assert sorted(d.chat.id for d in dialogs) == sorted(set(d.chat.id for d in dialogs))
        assert len(dialogs) == 19
        assert device.sizes and max(device.sizes) <= limits.MAX_SERVER_FRAME_BYTES
    finally:
        await device.close()
        await stranger.close()
        await victim.close()


def test_the_limit_is_below_what_sdks_accept():
    # aiohttp refuses a message of max_msg_size bytes or more; SDKs so far set 256 KiB.
    assert limits.MAX_SERVER_FRAME_BYTES < 4 * limits.MAX_FRAME_BYTES
    assert len(msgspec.msgpack.encode(EMOJI)) < limits.MAX_SERVER_FRAME_BYTES // 10
