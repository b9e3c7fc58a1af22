"""A planned restart warns (issue 13): on SIGTERM every connected device is told to come back
after ``restart_downtime`` plus a delay it picks within a window sized for the server's
reconnect rate, and the SDK obeys it instead of coming straight back with the herd."""

from __future__ import annotations

import asyncio

from pigeon.client import Client
from pigeon.server import restart_times
from pigeon.testing import ServerProcess, login

from raw_support import Raw

# Taken back at 0.05 devices a second, each connection widens the window by 20 s (two make
# 40 s). A downtime of 300 s is far longer than the test: nothing here depends on how fast
# the machine is.
SLOW_RETURN = {"PIGEON_RESTART_DOWNTIME": "300", "PIGEON_RESTART_RECONNECT_RATE": "0.05",
               "PIGEON_RESTART_WINDOW_MAX": "600"}


async def _closed(client: Client) -> None:
    while client.connected:
        await asyncio.sleep(0.05)


async def test_sigterm_sends_a_going_away_notice_that_the_sdk_obeys(tmp_path):
    with ServerProcess(tmp_path / "data", env=SLOW_RETURN) as server:
        alice = await login(server, "+12025550177", "Alice")
        raw = await Raw.open(server)
        try:
            welcome = await raw.hello(alice.profile.token)
            assert welcome["t"] == "welcome"
            assert alice.reconnect_wait == 0.0
            assert await asyncio.to_thread(server.stop) == 0
            await asyncio.wait_for(raw.closed.wait(), 30)
            await asyncio.wait_for(_closed(alice), 30)
            notice = raw.fatal
            assert notice is not None and notice["code"] == "SHUTTING_DOWN"
            # Two connections at 0.05 a second: a 40 s window, after the 300 s downtime.
            assert notice["retry_after"] == 300.0
            assert notice["retry_spread"] == 40.0
            # The SDK picked its own moment in [300, 340] s and has not come back.
            assert 250.0 < alice.reconnect_wait <= 340.0
            assert alice.reconnects == 0
        finally:
            await raw.ws.close()
            await raw.http.close()
            await alice.close()


async def test_the_window_is_capped(tmp_path):
    env = {**SLOW_RETURN, "PIGEON_RESTART_WINDOW_MAX": "7"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        alice = await login(server, "+12025550177", "Alice")
        raw = await Raw.open(server)
        try:
            assert (await raw.hello(alice.profile.token))["t"] == "welcome"
            assert await asyncio.to_thread(server.stop) == 0
            await asyncio.wait_for(raw.closed.wait(), 30)
            assert raw.fatal is not None and raw.fatal["retry_spread"] == 7.0
        finally:
            await raw.ws.close()
            await raw.http.close()
            await alice.close()


async def test_unset_the_downtime_announced_is_what_this_servers_restarts_take(tmp_path):
    """Each start records how long it took and each stop how long it went on after its
    notice (DATA/restart-times.json); the next notice announces their sum with a margin.
    Asserted against the file, not against a clock."""
    data = tmp_path / "data"
    with ServerProcess(data, env={"PIGEON_RESTART_WINDOW_MAX": "0"}) as server:
        alice = await login(server, "+12025550178", "Alice")
        await alice.close()
        stops: list[float | None] = []
        for _ in range(2):
            raw = await Raw.open(server)
            try:
                assert (await raw.hello(alice.profile.token))["t"] == "welcome"
                known = restart_times.read(data)  # this start's, the last stop's (or none)
                assert known.start is not None
                stops.append(known.stop)
                assert await asyncio.to_thread(server.stop) == 0
                await asyncio.wait_for(raw.closed.wait(), 30)
                assert raw.fatal is not None and raw.fatal["code"] == "SHUTTING_DOWN"
                assert raw.fatal["retry_after"] == known.downtime(1.0)  # stop_close_seconds
                assert raw.ws.close_code == 1001
            finally:
                await raw.close()
            assert restart_times.read(data).stop is not None  # this stop's, for the next
            await asyncio.to_thread(server.restart)
        # The first stop's notice had no measured stop to go by; the second had the first's.
        assert stops[0] is None and stops[1] is not None


async def test_a_send_made_during_a_restart_goes_out_as_soon_as_the_server_is_back(tmp_path):
    """The notice spreads the idle devices over a window of an hour here, but a device whose
    user is sending comes back when the downtime ends and, finding the port still closed,
    keeps trying every fifth of a second: its send is acknowledged once the server listens
    again (the 20 s below is a backstop: this device's own pick in the window would almost
    surely be later)."""
    env = {"PIGEON_RESTART_DOWNTIME": "0.3", "PIGEON_RESTART_RECONNECT_RATE": "0.0001",
           "PIGEON_RESTART_WINDOW_MAX": "3600"}
    with ServerProcess(tmp_path / "data", env=env) as server:
        alice = await login(server, "+12025550179", "Alice")
        bob = await login(server, "+12025550180", "Bob")
        try:
            chat = await alice.chats.open_private(bob.profile.user_id)
            assert await asyncio.to_thread(server.stop) == 0
            await asyncio.wait_for(_closed(alice), 30)
            assert alice.reconnect_wait > 1.0  # its idle pick: later than the downtime
            send = asyncio.create_task(alice.messages.send(chat.id, "made while down"))
            await asyncio.sleep(1.0)  # nothing listens: its tries are refused meanwhile
            assert not send.done()
            await asyncio.to_thread(server.restart)
            sent = await asyncio.wait_for(send, 20)
            assert alice.reconnects == 1
            page = await bob.messages.history(chat.id)
            assert [m.id for m in page] == [sent.message.id]
        finally:
            await alice.close()
            await bob.close()
