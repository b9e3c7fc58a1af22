"""The periodic purge of device inboxes: items older than the retention, in bounded steps
repeated while a step is full, off the hot path (its own task), and it survives a failure."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pigeon.server.settings import Settings
from pigeon.server.streams import PURGE_STEP, purge_device_inboxes


class FakeStore:
    def __init__(self, answers: list[int | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[float, int]] = []

    async def purge_device_inboxes(self, before: float, limit: int) -> int:
        self.calls.append((before, limit))
        answer = self.answers.pop(0) if self.answers else 0
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_purges_past_the_retention_in_steps_and_carries_on_after_a_failure() -> None:
    store = FakeStore([PURGE_STEP, PURGE_STEP, 7, RuntimeError("disk"), 0])
    settings = Settings(device_inbox_retention=100.0)
    services = SimpleNamespace(store=store, settings=settings, clock=lambda: 1_000.0)
    task = asyncio.create_task(purge_device_inboxes(services, every=0.01))  # type: ignore[arg-type]
    try:
        while len(store.calls) < 5:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    # Round one: full, full, then a short step ends it; round two fails; round three runs.
    assert store.calls[:5] == [(900.0, PURGE_STEP)] * 5
