"""Reconnect mode's idle devices on the SDK itself (``pigeon siege --sdk-devices``): each is
a :class:`~pigeon.client.Client` with its session token, so what the storm measures is the
SDK's own reconnect policy (full-jitter backoff, retry hints, the going-away notice) rather
than :mod:`.devices`' imitation of it (issue 13, deliverable 4).

One task watches every client ten times a second (a client has no drop callback, and ten
thousand watchers would cost more than the clients): a drop, a return (``reconnects``
moved) and a ``sync()`` after it are timed as :class:`.devices.Devices` times them.
"""

from __future__ import annotations

import asyncio
import time

from pigeon.client import Client
from pigeon.client.link import ServerUnreachable
from pigeon.client.profile import Profile
from pigeon.client.throttle import backoff
from pigeon.protocol.errors import PigeonError

from .devices import Devices
from .storm import ReconnectFailures

WATCH_EVERY = 0.1  # seconds between two looks at every client


class SdkDevices(Devices):
    async def run(self) -> None:
        url = f"http://{self.host}:{self.port}"
        clients = [Client(url, Profile(token=d["token"], user_id=d["user_id"]),
                          local_address=d["address"]) for d in self.devices]
        failures = ReconnectFailures()
        failures.attach()
        starts = [asyncio.create_task(self._first(i, c)) for i, c in enumerate(clients)]
        watcher = asyncio.create_task(self._watch(clients))
        try:
            await self.stop.wait()
        finally:
            for task in (*starts, watcher):
                task.cancel()
            await asyncio.gather(*starts, watcher, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            failures.detach()
            self.failures.update(failures.counts)

    async def _first(self, i: int, client: Client) -> None:
        """Connect and sync once, a few hundred at a time, before the storm."""
        async with self._start_slots:
            for attempt in range(20):
                try:
                    await client.connect()
                    await client.sync()
                    break
                except ServerUnreachable as exc:
                    self.failures[exc.code] += 1
                    await asyncio.sleep(backoff(attempt))
                except PigeonError as exc:
                    self.failures[exc.code] += 1
                    self.gave_up += 1
                    return
            else:
                self.gave_up += 1
                return
        self.ready += 1
        if self.ready == len(self.devices):
            self.storm_begins()

    async def _watch(self, clients: list[Client]) -> None:
        seen = [0] * len(clients)
        was_up = [False] * len(clients)
        syncs: dict[int, asyncio.Task[int]] = {}
        while True:
            now = time.time()
            for i, client in enumerate(clients):
                up = client.connected
                if was_up[i] and not up:
                    self.dropped[i] = now
                    self.back[i] = self.synced[i] = None
                if client.reconnects > seen[i]:
                    seen[i] = client.reconnects
                    self.back[i] = now
                    syncs[i] = asyncio.create_task(client.sync())
                was_up[i] = up
            self.connected = sum(was_up)
            for i, task in list(syncs.items()):
                if task.done():
                    del syncs[i]
                    if task.exception() is None:
                        self.synced[i] = time.time()
                    else:
                        self.failures[getattr(task.exception(), "code", "sync failed")] += 1
                        syncs[i] = asyncio.create_task(clients[i].sync())  # try again
            await asyncio.sleep(WATCH_EVERY)
