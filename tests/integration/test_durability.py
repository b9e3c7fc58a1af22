"""Nothing acknowledged is ever lost: kill -9 and graceful restarts, with real processes."""

import asyncio

from pigeon.protocol.methods import GetDifference
from pigeon.testing import ServerProcess, login

SENDERS = 3


async def _sender(client, chat_id: int, label: str, acked: list[str], stop: asyncio.Event,
                  limit: int) -> None:
    """One message at a time, so a sender's own messages must land in its send order."""
    for i in range(limit):
        if stop.is_set():
            return
        text = f"{label}-{i}"
        await client.messages.send(chat_id, text)  # resent by the SDK across the crash
        acked.append(text)


async def _run_crash(server: ServerProcess, phone, crash) -> None:
    clients = [await login(server, phone(), f"S{i}") for i in range(SENDERS)]
    reader = await login(server, phone(), "Reader")
    everyone = clients + [reader]
    try:
        group = await clients[0].chats.create_group(
            "durable", [c.profile.user_id for c in everyone[1:]])
        acked: dict[str, list[str]] = {f"s{i}": [] for i in range(SENDERS)}
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_sender(c, group.id, f"s{i}", acked[f"s{i}"], stop, 10_000))
                 for i, c in enumerate(clients)]
        async def until(condition) -> None:
            while not condition():
                failed = [t for t in tasks if t.done() and t.exception()]
                if failed:
                    raise failed[0].exception()
                await asyncio.sleep(0.01)

        await until(lambda: sum(map(len, acked.values())) >= 150)
        before = {k: len(v) for k, v in acked.items()}
        await asyncio.to_thread(crash)
        await asyncio.to_thread(server.restart)
        # Keep sending after the restart; then stop and let the in-flight sends finish.
        await until(lambda: all(len(acked[k]) >= before[k] + 20 for k in acked))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert all(c.reconnects >= 1 for c in clients), "the SDK did not reconnect"

        history = []
        before_id = None
        while page := await reader.messages.history(group.id, before_id=before_id, limit=100):
            history += page
            before_id = page[-1].id
        history.reverse()
        assert [m.id for m in history] == list(range(1, len(history) + 1))  # no gap in ids
        texts = [m.text for m in history]
        assert len(texts) == len(set(texts)), "a resend made a duplicate"
        for label, sent in acked.items():
            mine = [t for t in texts if t.startswith(label + "-")]
            assert mine == sent, f"{label}: acknowledged messages lost or out of order"
        assert sum(map(len, acked.values())) == len(texts)

        # The reader's update stream has every message once, pts with no gap.
        pts = reader.profile.pts
        diff = await reader.call("updates.get_difference", GetDifference(pts=0))
        seen = []
        while True:
            seen += diff.updates
            if not diff.more:
                break
            diff = await reader.call("updates.get_difference",
                                     GetDifference(pts=diff.state.pts))
        assert [u.pts for u in seen] == list(range(1, len(seen) + 1))
        new_texts = [u.message.text for u in seen if type(u).__name__ == "NewMessage"]
        assert new_texts == texts
        assert pts <= len(seen)
    finally:
        for c in everyone:
            await c.close()


async def test_kill_9_mid_stream_loses_nothing_acknowledged(server, phone):
    await _run_crash(server, phone, server.kill)


async def test_graceful_restart_mid_stream_loses_nothing(server, phone):
    def stop_cleanly():
        assert server.stop() == 0
        assert any("stopped cleanly" in line for line in server.log)

    await _run_crash(server, phone, stop_cleanly)
