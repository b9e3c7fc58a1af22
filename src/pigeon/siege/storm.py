"""Reconnect mode: restart the server and time every device until it is back and synced.

Two kinds of device go through the storm together:

* the chatting users, SDK clients in this process: back when ``client.reconnects`` moves,
  synced when a ``client.sync()`` started after that returns;
* the idle devices, in processes of their own (:mod:`.devices`), on the wire protocol with
  the SDK's reconnect policy, or with ``--sdk-devices`` SDK clients too (:mod:`.sdk_devices`).
  They are split over as many processes as ``--devices-per-process`` (5,000) makes: one
  event loop driving 10,000 SDK clients was the storm's bottleneck (a core at 100%, the
  server at 26%).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from typing import Any

from pigeon.client import Client

from .addresses import legit_address
from .setup import Account
from .stats import percentile


class ReconnectFailures(logging.Handler):
    """Counts the SDK's failed reconnect attempts by reason (it logs each at debug)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self._level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "reconnect failed: %s" and record.args:
            exc = record.args[0] if isinstance(record.args, tuple) else record.args
            self.counts[getattr(exc, "code", None) or type(exc).__name__] += 1

    def attach(self) -> None:
        sdk_log = logging.getLogger("pigeon.client")
        self._level = sdk_log.level
        sdk_log.addHandler(self)
        sdk_log.setLevel(logging.DEBUG)

    def detach(self) -> None:
        sdk_log = logging.getLogger("pigeon.client")
        sdk_log.removeHandler(self)
        sdk_log.setLevel(self._level)


class SdkTimes:
    def __init__(self, n: int) -> None:
        self.back: list[float | None] = [None] * n
        self.synced: list[float | None] = [None] * n
        self.failures: Counter[str] = Counter()
        self.sync_errors: Counter[str] = Counter()


async def track_sdk(clients: list[Client], base: list[int], deadline: float) -> SdkTimes:
    """Wait until every client has reconnected (``reconnects`` past ``base``) and finished
    a ``sync()`` (time.time() of each), or until ``deadline``."""
    times = SdkTimes(len(clients))
    failures = ReconnectFailures()
    failures.attach()
    syncing: dict[int, asyncio.Task[int]] = {}
    waiting = set(range(len(clients)))
    try:
        while (waiting or syncing) and time.time() < deadline:
            for i in [i for i in waiting if clients[i].reconnects > base[i]]:
                waiting.discard(i)
                times.back[i] = time.time()
                syncing[i] = asyncio.create_task(clients[i].sync())
            for i, task in list(syncing.items()):
                if not task.done():
                    continue
                del syncing[i]
                exc = task.exception()
                if exc is None:
                    times.synced[i] = time.time()
                else:
                    times.sync_errors[getattr(exc, "code", type(exc).__name__)] += 1
                    syncing[i] = asyncio.create_task(clients[i].sync())  # try again
            await asyncio.sleep(0.1)
    finally:
        for task in syncing.values():
            task.cancel()
        failures.detach()
    times.failures = failures.counts
    return times


class DevicePool:
    """The idle devices, in one process or several (parent side); their counts and final
    reports are added up as one's."""

    def __init__(self, parts: list[DeviceProcess]) -> None:
        self.parts = parts
        self.n = sum(part.n for part in parts)
        self.ready = asyncio.Event()
        self._ready = asyncio.create_task(self._all_ready())

    @classmethod
    async def start(cls, host: str, port: int, accounts: list[Account], first_index: int,
                    bind: bool, max_seconds: float, sdk: bool = False,
                    per_process: int = 5_000) -> DevicePool:
        split = max(1, -(-len(accounts) // per_process))
        size = max(1, -(-len(accounts) // split))
        return cls([await DeviceProcess.start(host, port, accounts[i:i + size],
                                              first_index + i, bind, max_seconds, sdk)
                    for i in range(0, len(accounts), size)])

    async def _all_ready(self) -> None:
        await asyncio.gather(*(part.ready.wait() for part in self.parts))
        self.ready.set()

    @property
    def running(self) -> bool:
        return all(part.proc.returncode is None for part in self.parts)

    @property
    def counts(self) -> dict[str, Any]:
        return _added([part.counts for part in self.parts])

    async def wait(self, condition: str, deadline: float) -> bool:
        """Until every device has reached ``condition``, a process ends, or deadline."""
        return all(await asyncio.gather(*(part.wait(condition, deadline)
                                           for part in self.parts)))

    async def stop(self) -> dict[str, Any] | None:
        """Stop the processes; their final reports as one (None if one gave none)."""
        self._ready.cancel()
        finals = await asyncio.gather(*(part.stop() for part in self.parts))
        if any(final is None for final in finals):
            return None
        merged = _added([final for final in finals if final is not None])
        merged["times"] = [t for final in finals if final is not None for t in final["times"]]
        return merged


def _added(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Device counts of several processes as one's: numbers added, counters merged."""
    out: dict[str, Any] = {}
    for report in reports:
        for key, value in report.items():
            if key == "t":  # the time of the report: the latest
                out[key] = max(out.get(key, value), value)
            elif isinstance(value, bool):
                out[key] = out.get(key, True) and value
            elif isinstance(value, (int, float)):
                out[key] = out.get(key, 0) + value
            elif isinstance(value, dict):
                merged = Counter(out.get(key, {}))
                merged.update(value)
                out[key] = dict(merged)
    return out


class DeviceProcess:
    """One process of idle devices (parent side)."""

    def __init__(self, proc: asyncio.subprocess.Process, n: int) -> None:
        self.proc, self.n = proc, n
        self.counts: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, host: str, port: int, accounts: list[Account], first_index: int,
                    bind: bool, max_seconds: float, sdk: bool = False) -> DeviceProcess:
        devices = [{"token": a.token, "user_id": a.user_id,
                    "address": legit_address(first_index + i) if bind else None}
                   for i, a in enumerate(accounts)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pigeon.siege.devices", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            limit=1 << 24)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"host": host, "port": port, "devices": devices,
                                     "max_seconds": max_seconds, "sdk": sdk}).encode() + b"\n")
        await proc.stdin.drain()  # stdin stays open: closing it stops the process
        return cls(proc, len(accounts))

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            msg = json.loads(line)
            if msg.get("done"):
                self.final = msg
                break
            self.counts = msg
            if msg.get("all_ready"):
                self.ready.set()
            self.changed.set()
        self.changed.set()

    async def wait(self, condition: str, deadline: float) -> bool:
        """Until ``counts[condition]`` reaches every device, the process ends, or deadline."""
        while self.counts.get(condition, 0) < self.n:
            if self._reader.done() or time.time() >= deadline:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.time()))
            except TimeoutError:
                return False
        return True

    async def stop(self) -> dict[str, Any] | None:
        """Stop the process; its final report (each device's last drop, return, sync)."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), 30.0)
        except TimeoutError:
            pass
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 10.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
        return self.final


def storm_summary(began: float, listening: float, sdk: SdkTimes | None,
                  devices: dict[str, Any] | None) -> dict[str, Any]:
    """Every device's return and sync, in seconds after the restart began."""
    back: list[float | None] = []
    synced: list[float | None] = []
    failures: Counter[str] = Counter()
    sync_errors: Counter[str] = Counter()
    if sdk is not None:
        back += sdk.back
        synced += sdk.synced
        failures.update(sdk.failures)
        sync_errors.update(sdk.sync_errors)
    if devices is not None:
        for dropped, b, s in devices["times"]:
            # A device that never dropped did not go through the storm (it should have).
            back.append(b if dropped is not None and dropped >= began - 1.0 else None)
            synced.append(s if dropped is not None and dropped >= began - 1.0 else None)
        failures.update(devices.get("failures", {}))
    rel_back = [b - began for b in back if b is not None]
    rel_synced = [s - began for s in synced if s is not None]
    n = len(back)

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    return {
        "clients": n,
        "sdk_clients": len(sdk.back) if sdk is not None else 0,
        "wire_devices": len(devices["times"]) if devices is not None else 0,
        "server_back_s": r(listening - began),
        "reconnected": len(rel_back),
        "synced": len(rel_synced),
        "not_synced": n - len(rel_synced),
        "all_back_s": r(max(rel_back)) if len(rel_back) == n and n else None,
        "all_synced_s": r(max(rel_synced)) if len(rel_synced) == n and n else None,
        "all_synced_after_listening_s": (r(max(rel_synced) - (listening - began))
                                         if len(rel_synced) == n and n else None),
        "p50_synced_s": r(percentile(rel_synced, 0.5)),
        "p99_synced_s": r(percentile(rel_synced, 0.99)),
        "reconnect_failures": dict(failures.most_common()),
        "failures_before_storm": (devices.get("failures_before_storm", {})
                                  if devices is not None else {}),
        "sync_errors": dict(sync_errors.most_common()),
        "wire_devices_at_end": ({k: devices[k] for k in ("connected", "gave_up", "dropped",
                                                         "back", "synced")}
                                if devices is not None else None),
        "not_back_by_phase": (devices.get("not_back_by_phase", {})
                              if devices is not None else {}),
    }
