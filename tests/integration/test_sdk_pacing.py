"""An honest SDK under the shield's default limits (issue 7, finding 12).

A fresh Client that made 40 calls at once got no answer in 45 s, reconnected 8 times and
had its own address banned: right after hello its connection still had only the anonymous
frame burst (20), and on every reconnect the SDK resent all its pending calls at once. Now a
connection that logs in gets the authenticated budget at once, and the SDK paces its calls
within the budget the server announces in ``welcome``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from pigeon.client import Client, Profile
from pigeon.protocol import methods as m
from pigeon.testing import ServerProcess, login

pytestmark = pytest.mark.slow

# The shield's defaults for everything a logged-in device meets (pigeon.testing relaxes
# them for other tests, whose clients all share 127.0.0.1).
DEFAULT_LIMITS = {
    "PIGEON_FRAME_RATE": "200/1s burst 400",
    "PIGEON_FRAME_RATE_UNAUTHENTICATED": "10/1s burst 20",
    "PIGEON_RATE_SESSION": "50/1s burst 100",
    "PIGEON_RATE_ACCOUNT": "100/1s burst 200",
    "PIGEON_RATE_SEND": "5/1s burst 30",
}


async def _shield(server: ServerProcess) -> dict:
    async with aiohttp.ClientSession() as http, \
            http.get(f"{server.operator_url}/shield") as response:
        return await response.json()


async def _assert_nothing_refused(server: ServerProcess) -> None:
    status = await _shield(server)
    assert status["bans"]["banned_addresses"] == 0, status["bans"]
    assert not {"rate", "frame_rate", "banned"} & set(status["refused"]), status["refused"]


def _many_calls(client: Client, chat_id: int, sends: int, reads: int) -> list:
    calls = [client.messages.send(chat_id, f"burst {i}") for i in range(sends)]
    calls += [client.call("updates.get_state", m.GetState()) for _ in range(reads)]
    calls += [client.messages.history(chat_id, limit=5) for _ in range(reads // 2)]
    return calls


async def test_a_fresh_client_with_many_calls_at_once_is_served(tmp_path: Path, phone) -> None:
    with ServerProcess(tmp_path / "data", env=DEFAULT_LIMITS) as server:
        profile = tmp_path / "alice.json"
        alice = await login(server, phone(), "Alice", profile=profile)
        bob = await login(server, phone(), "Bob")
        chat = await alice.chats.open_private((await bob.account.me()).user.id)
        await alice.close()
        fresh = Client(server.url, Profile.load(profile))
        await fresh.connect()
        try:
            # 40 sends (over the account's send burst of 30) and 120 reads (over the
            # session's burst of 100), all at once: every one is answered, none refused.
            results = await asyncio.wait_for(
                asyncio.gather(*_many_calls(fresh, chat.id, sends=40, reads=80)), 60)
            assert len(results) == 160
            assert fresh.reconnects == 0
            await _assert_nothing_refused(server)

            # The server restarts under 60 pending calls: after the reconnect the SDK does
            # not fire them all at once into a fresh connection's budget.
            server.stop()
            pending = asyncio.gather(*_many_calls(fresh, chat.id, sends=20, reads=40))
            await asyncio.sleep(0.5)
            server.start()
            results = await asyncio.wait_for(pending, 90)
            assert len(results) == 80
            assert fresh.reconnects >= 1
            await _assert_nothing_refused(server)
        finally:
            await fresh.close()
            await bob.close()
