"""Reconnect mode's idle devices: thousands of logged-in connections in a process of their own.

One Python process cannot drive ten thousand aiohttp-based SDK clients through a reconnect
storm on a small machine: the clients themselves become the bottleneck (slow handshakes
look like slowloris to the shield, which evicts them, and they retry). So the idle devices
speak the wire protocol directly (:class:`.rawws.Rpc`) with the SDK's reconnect policy:

* on a drop, retry with exponential backoff and full jitter (the SDK's own ``backoff``:
  uniform in [0, min(30 s, 0.2 s * 2^attempt)]), but not before a going-away notice said
  (``retry_after`` plus a random pick within ``retry_spread``, as the SDK does); after a
  drop without a notice, once the first attempt fails, not before a pick within the last
  welcome's ``reconnect_window`` either (the SDK's ``outage_wait``);
* once back (``hello`` with the session token answered by ``welcome``), ``sync``:
  ``updates.get_difference`` from the last pts until ``more`` is false, as ``Client.sync``.

The legitimate users that chat during the storm are real SDK clients (:mod:`.legit`).

With ``"sdk": true`` in the plan the devices are SDK clients instead (:mod:`.sdk_devices`).

Run as ``python -m pigeon.siege.devices``: a plan as one JSON line on stdin; then stdin
closing (or a line ``stop``) ends it. On stdout, one JSON line when every device is
connected and synced (``all_ready``), one a second with cumulative counts, and a last one
(``done``) with each device's last drop, return and sync times.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from typing import Any

from .addresses import raise_fd_limit
from .rawws import CallFailed, Closed, Refused, Rpc

# the SDK's own reconnect policy
from pigeon.client.throttle import backoff, hinted_wait, notice_wait, outage_wait

#: a get_difference not answered within this is counted ("sync unanswered") and the device
#: connects again, as the SDK's call timeout would have it: a server that never answers is a
#: finding, not a device silently lost to the storm's figures
SYNC_TIMEOUT = 30.0


class Devices:
    def __init__(self, host: str, port: int, devices: list[dict[str, Any]],
                 tickets: bool = True) -> None:
        self.host, self.port, self.devices = host, port, devices
        n = len(devices)
        self.dropped: list[float | None] = [None] * n   # time.time() of the last drop
        self.back: list[float | None] = [None] * n      # ... of the return after it
        self.synced: list[float | None] = [None] * n    # ... of the sync after that
        self.ready = 0
        self.connected = 0
        self.failures: Counter[str] = Counter()
        # Failures while the devices first connected (an idle crowd from addresses the
        # server does not know yet is rationed): not the storm's, so counted apart.
        self.failures_before: Counter[str] = Counter()
        self.gave_up = 0
        self.stop = asyncio.Event()
        self.all_ready = asyncio.Event()
        self._start_slots = asyncio.Semaphore(200)  # the first connections: not all at once
        self.hint: list[float | None] = [None] * n  # each device's last refusal's retry_after
        self.window: list[float | None] = [None] * n  # ... and its last welcome's window
        self.tickets = tickets  # present resumption tickets, as the SDK does
        # Where each device is in its loop: so that one that never comes back says where
        # it got stuck (connecting, waiting to try again, syncing) instead of nothing.
        self.phase: list[str] = ["connecting"] * n
        self.sync_timeout = SYNC_TIMEOUT

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._device(i)) for i in range(len(self.devices))]
        try:
            await self.stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect(self, i: int) -> Rpc | None:
        """Connected, or None after a failure (``self.hint[i]``: when the server said to come
        back, if it did)."""
        device = self.devices[i]
        try:
            rpc = await Rpc.open(self.host, self.port, device["address"], device["token"],
                                 timeout=10.0,
                                 ticket=device.get("ticket") if self.tickets else None)
        except Refused as exc:
            self.failures[str(exc).split(":")[0]] += 1
            self.hint[i] = exc.retry_after
        except CallFailed as exc:
            self.failures[exc.code] += 1
            self.hint[i] = exc.retry_after
            if exc.code == "SESSION_INVALID":
                raise
        else:
            welcome = rpc.welcome.result()
            if welcome.get("ticket"):
                device["ticket"] = welcome["ticket"]  # as the SDK keeps it in its profile
            self.window[i] = welcome.get("reconnect_window")
            return rpc
        return None

    async def _sync(self, rpc: Rpc, pts: int) -> int:
        while True:
            try:
                diff = await rpc.call("updates.get_difference", {"pts": pts},
                                      timeout=self.sync_timeout)
            except CallFailed as exc:
                if exc.code not in ("DEFERRED", "OVERLOADED"):
                    raise
                self.failures[f"sync {exc.code}"] += 1
                await asyncio.sleep(hinted_wait(exc.retry_after or 1.0))
                continue
            pts = max(pts, int(diff["state"]["pts"]))
            if not diff.get("more"):
                return pts

    async def _device(self, i: int) -> None:
        pts = 0
        first = True
        attempt = 0
        spread: float | None = None  # a drop without a notice: the window to spread over
        while not self.stop.is_set():
            self.phase[i] = "connecting"
            try:
                if first:
                    async with self._start_slots:
                        rpc = await self._connect(i)
                else:
                    rpc = await self._connect(i)
            except CallFailed:
                self.gave_up += 1
                self.phase[i] = "gave up"
                return
            except Exception as exc:  # noqa: BLE001 - counted, never a device lost silently
                self.failures[f"connect {type(exc).__name__}"] += 1
                rpc = None
            if rpc is None:
                self.phase[i] = "waiting"
                # Full jitter, but never sooner than the server said (the SDK's policy) ...
                wait = max(backoff(attempt), hinted_wait(self.hint[i]))
                if spread:  # ... nor, after an unannounced drop, than this device's pick
                    wait = max(wait, outage_wait(spread))
                    spread = None
                await asyncio.sleep(wait)
                attempt += 1
                continue
            attempt = 0
            self.connected += 1
            try:
                if not first:
                    self.back[i] = time.time()
                self.phase[i] = "syncing"
                pts = await self._sync(rpc, pts)
                self.phase[i] = "online"
                if first:
                    first = False
                    self.ready += 1
                    if self.ready == len(self.devices):
                        self.storm_begins()
                else:
                    self.synced[i] = time.time()
                await rpc.done.wait()
            except (Closed, CallFailed) as exc:
                self.failures[getattr(exc, "code", "closed while syncing")] += 1
            except TimeoutError:
                self.failures["sync unanswered"] += 1
            finally:
                self.connected -= 1
                rpc.close()
            if not first:
                self.dropped[i] = time.time()
                self.back[i] = self.synced[i] = None
            notice = _notice_wait(rpc.farewell)
            spread = self.window[i] if rpc.farewell is None else None
            await asyncio.sleep(notice)

    def storm_begins(self) -> None:
        """Every device is connected and synced: what fails from now on is the storm's."""
        self.failures_before, self.failures = self.failures, Counter()
        self.all_ready.set()

    def counts(self) -> dict[str, Any]:
        away = Counter(phase for phase, dropped, back in zip(
            self.phase, self.dropped, self.back, strict=True) if dropped and back is None)
        return {"connected": self.connected, "ready": self.ready, "gave_up": self.gave_up,
                "not_back_by_phase": dict(away),
                "dropped": sum(d is not None for d in self.dropped),
                "back": sum(b is not None for b in self.back),
                "synced": sum(s is not None for s in self.synced),
                "failures": dict(self.failures),
                "failures_before_storm": dict(self.failures_before)}


def _notice_wait(farewell: dict[str, Any] | None) -> float:
    """How long a going-away notice asked this device to stay away (0: none came)."""
    if farewell is None or farewell.get("retry_spread") is None:
        return 0.0
    return notice_wait(float(farewell.get("retry_after") or 0.0), float(farewell["retry_spread"]))


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _watch_stdin(devices: Devices) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (line := await reader.readline()) and line.strip() != b"stop":
        pass
    devices.stop.set()


async def main() -> None:
    plan = json.loads(sys.stdin.readline())
    raise_fd_limit(len(plan["devices"]) + 1024)
    kind = Devices
    if plan.get("sdk"):
        from .sdk_devices import SdkDevices  # imports the SDK, which the wire devices do not need
        kind = SdkDevices
    devices = kind(plan["host"], plan["port"], plan["devices"])
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, devices.stop.set)
    watcher = asyncio.create_task(_watch_stdin(devices))
    runner = asyncio.create_task(devices.run())

    async def ready() -> None:
        await devices.all_ready.wait()
        _emit({"all_ready": True, **devices.counts()})

    async def every_second() -> None:
        while True:
            await asyncio.sleep(1.0)
            _emit({"t": time.time(), **devices.counts()})

    helpers = [asyncio.create_task(ready()), asyncio.create_task(every_second())]
    # Bounded: the siege's whole budget is far less than an hour.
    await asyncio.wait({runner}, timeout=float(plan.get("max_seconds", 3600)))
    devices.stop.set()
    await asyncio.gather(runner, return_exceptions=True)
    for task in (*helpers, watcher):
        task.cancel()
    _emit({"done": True, **devices.counts(),
           "times": [[d, b, s] for d, b, s in zip(devices.dropped, devices.back,
                                                   devices.synced, strict=True)]})


def run() -> None:
    from pigeon.runtime import run as run_loop

    run_loop(main())


if __name__ == "__main__":
    run()
