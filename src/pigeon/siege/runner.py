"""Runs a siege: servers, setup, the measured runs, and the report document.

One run, second by second::

    setup (not measured)   accounts registered on a setup server with limits lifted
    connect                the legitimate (and, for reconnect, idle) clients log in
    baseline               legitimate traffic only
    attack                 the attacker process floods (or, reconnect: the server restarts)
    recovery               legitimate traffic only, until --duration
    drain                  sends in flight finish or time out; everything is closed

With ``--compare`` the same setup (a copy of the same data directory) is measured twice: on
``pigeon serve --no-shield``, then on the default server with its shield on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pigeon.testing import ServerProcess

from . import report
from .addresses import attacker_address, raise_fd_limit, spammer_address
from .attackers import Plan
from .config import SiegeConfig, SiegeError, check_loopback
from .legit import Legit, close_all, newcomers, signups
from .monitor import ProcessSampler, find_listener, machine_cpu_percent
from .setup import CodeSource, Fixture, LogFileCodes, ServerCodes, build_fixture
from .stats import RunStats, phase_of, series, summarize, totals
from .storm import DevicePool, SdkTimes, storm_summary, track_sdk

#: Progress(text, transient): transient lines overwrite each other on a terminal.
Progress = Callable[[str, bool], None]

VICTIMS = 8  # offline accounts that receive the spam
_LIFTED = "1000000/1s burst 1000000"
# The setup server registers thousands of accounts in seconds: no shield, no code limits.
# (Names the server does not know are ignored, so this works on servers old and new.)
SETUP_ENV = {"PIGEON_SHIELD": "0", "PIGEON_CODE_RATE_PHONE": _LIFTED,
             "PIGEON_CODE_RATE_ADDRESS": _LIFTED, "PIGEON_CODE_RATE_COUNTRY": _LIFTED,
             "PIGEON_CODE_RATE_GLOBAL": _LIFTED, "PIGEON_RATE_ADDRESS": _LIFTED,
             "PIGEON_RATE_PREFIX": _LIFTED}


def measured_env() -> dict[str, str]:
    """Environment of the measured servers. ServerProcess lifts the per-address and
    per-prefix limits because tests all come from 127.0.0.1; siege clients each have their
    own address, so the server gets its real settings back (the operator's environment if
    set, else the server's defaults)."""
    from pigeon import testing
    from pigeon.server.settings import Settings

    defaults = Settings()
    lifted = testing.LOOPBACK_LIMITS
    env = {}
    for key in lifted:
        name = key.removeprefix("PIGEON_").lower()
        if key in os.environ:
            env[key] = os.environ[key]
        elif hasattr(defaults, name):
            env[key] = str(getattr(defaults, name))
    return env


@dataclass
class Target:
    url: str
    host: str                         # what raw sockets connect to
    port: int
    codes: CodeSource | None
    pid: Callable[[], int | None]
    server: ServerProcess | None = None
    bind: bool = True                 # bind client sockets across 127.0.0.0/8 (IPv4 targets)
    # Of the last restart: seconds to stop (the process gone) and to start (listening).
    stop_s: float | None = None
    start_s: float | None = None
    stop_phases: list[str] = field(default_factory=list)

    def source(self, address: str) -> str | None:
        return address if self.bind else None

    async def restart(self, kill: bool = False) -> None:
        """SIGTERM (a planned restart: the server warns its devices), or with ``kill`` an
        outage (kill -9: nobody is told)."""
        assert self.server is not None
        # A planned stop closes every device's connection politely: with 10,000 of them on
        # a loaded 2-core machine that took over the 20 s the test fixture allows.
        began = time.monotonic()
        if kill:
            await asyncio.to_thread(self.server.kill)
        else:
            try:
                await asyncio.to_thread(self.server.stop, STOP_TIMEOUT)
            finally:
                # Where the stop's time went: the phases the server logs (server/stopping.py).
                self.stop_phases = [line.split("stop ", 1)[1].strip()
                                    for line in self.server.log if "pigeon.server: stop +" in line]
                if self.server.proc is not None and self.server.proc.poll() is None:
                    print("the server did not stop; its last lines:\n"
                          + "".join(self.server.log[-30:]), file=sys.stderr, flush=True)
        stopped = time.monotonic()
        await asyncio.to_thread(self.server.start)
        self.stop_s, self.start_s = stopped - began, time.monotonic() - stopped


STOP_TIMEOUT = 120.0  # seconds a restarted server may take to stop


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _own_target(server: ServerProcess) -> Target:
    return Target(server.url, "127.0.0.1", server.port, ServerCodes(server),
                  lambda: server.proc.pid if server.proc and server.proc.poll() is None else None,
                  server)


def _external_target(cfg: SiegeConfig) -> Target:
    assert cfg.server is not None
    host = check_loopback(cfg.server)
    parts = urlsplit(cfg.server if "://" in cfg.server else "http://" + cfg.server)
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    if parts.scheme in ("https", "wss"):
        raise SiegeError("the siege speaks plain ws:// to loopback; point --server at http://")
    if host == "localhost":
        host = "127.0.0.1"
    codes = LogFileCodes(Path(cfg.code_log)) if cfg.code_log else None
    pid = cfg.server_pid or find_listener(port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    return Target(url, host, port, codes, lambda: pid, None, bind=":" not in host)


async def _start(server: ServerProcess) -> None:
    try:
        await asyncio.to_thread(server.start)
    except (RuntimeError, TimeoutError) as exc:
        raise SiegeError(f"could not start `pigeon serve {' '.join(server.extra_args)}`: "
                         f"{exc}") from None


def _stop(server: ServerProcess) -> None:
    if server.proc is None or server.proc.poll() is not None:
        return
    try:
        server.stop(timeout=20.0)
    except Exception:  # noqa: BLE001 - it must go, one way or another
        server.kill()


def attack_plan(cfg: SiegeConfig, target: Target, fixture: Fixture, t0: float,
                window: tuple[float, float]) -> Plan:
    split: dict[str, list[str | None]] = {}
    offset = 0
    for mode, n in cfg.split().items():
        split[mode] = [target.source(attacker_address(offset + i, cfg.attack_subnets))
                       for i in range(n)]
        offset += n
    spam = [{"token": s.token, "chats": fixture.spam_chats[i],
             "address": target.source(spammer_address(i))}
            for i, s in enumerate(fixture.spammers)] if "spam" in cfg.attack_modes else []
    return Plan(host=target.host, port=target.port, t0=t0, on_at=t0 + window[0],
                off_at=t0 + window[1], modes=split, spam=spam,
                conns_per_attacker=cfg.conns_per_attacker, slow_interval=cfg.slow_interval,
                seed=cfg.seed)


async def _spawn_attackers(plan: Plan) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon.siege.attackproc", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=1 << 22)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(asdict(plan)).encode() + b"\n")
    await proc.stdin.drain()
    # stdin stays open: the attacker process stops when it closes, i.e. when we are gone.
    return proc


async def _tail(stream: asyncio.StreamReader | None, lines: deque[str]) -> None:
    """Keep the last lines of the attacker process's stderr, for the report if it fails."""
    if stream is not None:
        async for line in stream:
            lines.append(line.decode("utf-8", "replace").rstrip())


async def _read_attackers(proc: asyncio.subprocess.Process, stats: RunStats) -> None:
    assert proc.stdout is not None
    async for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("done"):
            return
        stats.attack_counts(int(msg["sec"]), msg["modes"])


async def run_once(cfg: SiegeConfig, target: Target, fixture: Fixture, label: str,
                   server_args: list[str], progress: Progress) -> dict[str, Any]:
    began = time.monotonic()
    stats = RunStats(cfg.timeout, cfg.newcomer_timeout)
    joining: asyncio.Task[None] | None = None
    legit = Legit(target.url, fixture, stats, cfg.rate, cfg.timeout, bind=target.bind)
    pool: DevicePool | None = None
    proc: asyncio.subprocess.Process | None = None
    helpers: list[asyncio.Task[Any]] = []
    storm: asyncio.Task[tuple[float, float, SdkTimes]] | None = None
    reconnect = None
    reason = "completed"
    notes: list[str] = []
    errors: deque[str] = deque(maxlen=20)
    seconds = 0
    D = cfg.duration
    window = [cfg.attack_start * D, cfg.attack_end * D]
    try:
        progress(f"[{label}] connecting {len(fixture.users)} legitimate users", False)
        await legit.connect()
        if fixture.idle and cfg.mode == "reconnect":
            pool = await _start_devices(cfg, target, fixture, label, progress)
        t0 = time.time() + 1.0
        server_cpu = ProcessSampler(target.pid)
        siege_cpu = ProcessSampler(os.getpid)
        attack_cpu = ProcessSampler(lambda: proc.pid if proc and proc.returncode is None
                                    else None)
        if cfg.attack_modes:
            plan = attack_plan(cfg, target, fixture, t0, (window[0], window[1]))
            proc = await _spawn_attackers(plan)
            helpers.append(asyncio.create_task(_read_attackers(proc, stats)))
            helpers.append(asyncio.create_task(_tail(proc.stderr, errors)))
        for sampler in (server_cpu, siege_cpu, attack_cpu):
            sampler.prime()
        machine_cpu_percent()
        reconnect_mode = cfg.mode == "reconnect"
        hard_stop = t0 + D + (cfg.reconnect_timeout + 30.0 if reconnect_mode else 0.0) + 5.0
        # Reconnect mode: legitimate traffic goes on until the storm has settled (the storm
        # then sets the end: its last client synced, plus a recovery period).
        legit.start(t0, hard_stop if reconnect_mode else t0 + D)
        if cfg.logins > 0 and target.codes is not None:
            helpers.append(asyncio.create_task(signups(
                target.url, target.codes, stats, t0, lambda: legit.end, cfg.logins,
                target.bind)))
        if cfg.newcomers and target.codes is not None:
            joining = asyncio.create_task(newcomers(
                target.url, target.codes, stats, t0, (window[0], window[1]), cfg.newcomers,
                cfg.newcomer_timeout, target.bind))
        if reconnect_mode:
            storm = asyncio.create_task(_storm(cfg, target, legit, pool, t0, window))
        sec = 0
        while True:
            await asyncio.sleep(max(0.0, t0 + sec + 1 - time.time()))
            attack_sample = attack_cpu.sample()
            stats.sample(sec, server_cpu.sample(), {
                "siege_cpu_percent": siege_cpu.sample()["cpu_percent"],
                "attackers_cpu_percent": attack_sample["cpu_percent"],
                "machine_cpu_percent": machine_cpu_percent()})
            if sec >= 1:  # the previous second is complete (attacker counts arrive late)
                row = summarize([stats.at(sec - 1)], cfg.timeout)
                row.update(phase=phase_of(sec - 1, (window[0], window[1])),
                           server=stats.at(sec - 1).server)
                total = max(int(D), sec)
                progress(report.progress_line(label, sec - 1, total, row,
                                              pool.counts if pool else None), True)
            sec += 1
            if storm is not None and storm.done() and storm.exception() is not None:
                reason = "storm failed"
                notes.append(f"the reconnect storm failed: {storm.exception()!r}")
                break
            if time.time() >= legit.end and (storm is None or storm.done()):
                break
            if time.time() >= hard_stop:
                reason = "time limit"
                break
        seconds = sec
        if joining is not None:  # the last ones set out at the end of the attack
            await asyncio.wait([joining], timeout=cfg.newcomer_timeout + 10.0)
        await legit.finish()
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 15.0)
            except TimeoutError:
                proc.kill()
                reason = "attackers killed"
            await asyncio.wait(helpers, timeout=5.0)
            if proc.returncode:
                notes.append(f"the attacker process exited with code {proc.returncode}: "
                             + " | ".join(errors))
        if storm is not None and storm.done() and storm.exception() is None:
            restart, listening, sdk = storm.result()
            final = await pool.stop() if pool is not None else None
            reconnect = {**storm_summary(restart, listening, sdk, final),
                         "restart_at_s": round(restart - t0, 2), "restart": cfg.restart,
                         "idle_devices_on": "sdk" if cfg.sdk_devices else "wire",
                         "stop_s": _rounded(target.stop_s), "start_s": _rounded(target.start_s),
                         "stop_phases": target.stop_phases}
    finally:
        if joining is not None and not joining.done():
            joining.cancel()
        if storm is not None and not storm.done():
            storm.cancel()
        for task in helpers:
            task.cancel()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if pool is not None:
            await pool.stop()
        await close_all(legit.users)
    doc_window = [round(window[0], 2), round(window[1], 2)]
    return {
        "label": label,
        "server_args": server_args,
        "attack_window_s": doc_window,
        "seconds": seconds,
        "series": series(stats, seconds, (window[0], window[1])),
        "totals": totals(stats, seconds, (window[0], window[1])),
        "reconnect": reconnect,
        "stopped": {"reason": reason, "wall_s": round(time.monotonic() - began, 1)},
        "notes": notes,
    }


async def _start_devices(cfg: SiegeConfig, target: Target, fixture: Fixture, label: str,
                         progress: Progress) -> DevicePool:
    n = len(fixture.idle)
    progress(f"[{label}] connecting {n} idle devices", False)
    pool = await DevicePool.start(target.host, target.port, fixture.idle, len(fixture.users),
                                  target.bind, max_seconds=cfg.duration + 600.0,
                                  sdk=cfg.sdk_devices, per_process=cfg.devices_per_process)
    deadline = time.time() + 120.0 + n * 0.02
    while not pool.ready.is_set() and time.time() < deadline and pool.running:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pool.ready.wait(), 1.0)
        progress(f"[{label}] idle devices connected: {pool.counts.get('ready', 0)}/{n}", True)
    if not pool.ready.is_set():
        counts = pool.counts
        await pool.stop()
        raise SiegeError(f"the {n} idle devices did not all connect before the storm "
                         f"({counts.get('ready', 0)} did; failures: {counts.get('failures')})")
    return pool


async def _storm(cfg: SiegeConfig, target: Target, legit: Legit, pool: DevicePool | None,
                 t0: float, window: list[float]) -> tuple[float, float, SdkTimes]:
    """Reconnect mode: restart the server at the attack start; every device reconnects.
    Returns when the restart began, when the server listened again, and the SDK times."""
    await asyncio.sleep(max(0.0, t0 + window[0] - time.time()))
    clients = legit.users
    base = [c.reconnects for c in clients]
    began = time.time()
    window[0] = began - t0
    window[1] = began - t0 + cfg.reconnect_timeout  # until known
    await target.restart(kill=cfg.restart == "kill")
    listening = time.time()
    deadline = began + cfg.reconnect_timeout
    sdk = asyncio.create_task(track_sdk(list(clients), base, deadline))
    if pool is not None:
        await pool.wait("synced", deadline)
    times = await sdk
    window[1] = time.time() - t0
    recovery = max(3.0, (1.0 - cfg.attack_end) * cfg.duration)
    legit.end = max(t0 + cfg.duration, time.time() + recovery)
    return began, listening, times


async def _setup(cfg: SiegeConfig, target: Target, progress: Progress) -> Fixture:
    if target.codes is None:
        raise SiegeError("with --server, pass --code-log FILE (the server's stderr, where the "
                         "console code sender prints login codes): the siege signs its "
                         "accounts up with them")
    spammers = cfg.spam_accounts if cfg.needs_spammers else 0
    total = 2 * cfg.pairs + cfg.idle_clients + spammers + (VICTIMS if spammers else 0)
    progress(f"setup: registering {total} accounts", False)

    def tick(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            progress(f"setup: {done}/{total} accounts registered", True)

    try:
        return await build_fixture(target.host, target.port, target.codes, pairs=cfg.pairs,
                                   idle=cfg.idle_clients, spammers=spammers,
                                   victims=VICTIMS if spammers else 0,
                                   timeout=120.0 + total * 0.05, bind=target.bind,
                                   progress=tick)
    except Exception as exc:  # one clear line, whatever stopped the setup
        raise SiegeError(f"setup failed: {type(exc).__name__}: {exc}") from exc


def _scenarios(cfg: SiegeConfig) -> list[tuple[str, list[str]]]:
    args = list(cfg.serve_args)
    if cfg.compare:
        return [("no-shield", ["--no-shield", *args]), ("shield", args)]
    return [("no-shield" if "--no-shield" in args else "shield", args)]


async def siege(cfg: SiegeConfig, progress: Progress) -> dict[str, Any]:
    """Run the whole siege; returns the report document (see :mod:`.report`)."""
    cfg.validate()
    clients = 2 * cfg.pairs + cfg.idle_clients
    soft = raise_fd_limit(clients + cfg.max_sockets + 4096)
    if soft < clients + 1024:
        raise SiegeError(f"the open-files limit ({soft}) is too low for {clients} clients: "
                         "raise `ulimit -n` or lower --clients")
    budget = 180.0 + clients * 0.05 + len(_scenarios(cfg)) * (
        cfg.duration + 90.0 + (cfg.reconnect_timeout + clients * 0.03
                               if cfg.mode == "reconnect" else 0.0))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pigeon-siege-") as tmp:
        work = Path(tmp)
        try:
            async with asyncio.timeout(budget):
                if cfg.server is not None:
                    target = _external_target(cfg)
                    fixture = await _setup(cfg, target, progress)
                    runs.append(await run_once(cfg, target, fixture, "target", [], progress))
                else:
                    await _own_runs(cfg, work, progress, runs)
        except TimeoutError:
            raise SiegeError(f"the siege overran its time budget ({budget:.0f} s) and was "
                             "stopped; everything it started has been shut down") from None
    return report.document(cfg.parameters(), runs)


async def _own_runs(cfg: SiegeConfig, work: Path, progress: Progress,
                    runs: list[dict[str, Any]]) -> None:
    template = work / "template"
    setup_server = ServerProcess(template, *cfg.serve_args, env=SETUP_ENV)
    try:
        progress("setup: starting a server to register accounts on", False)
        await _start(setup_server)
        fixture = await _setup(cfg, _own_target(setup_server), progress)
    finally:
        await asyncio.to_thread(_stop, setup_server)
    for label, args in _scenarios(cfg):
        data = work / label
        shutil.copytree(template, data)
        server = ServerProcess(data, *args, env=measured_env())
        try:
            progress(f"[{label}] starting `pigeon serve {' '.join(args)}`", False)
            await _start(server)
            runs.append(await run_once(cfg, _own_target(server), fixture, label, args,
                                       progress))
        finally:
            await asyncio.to_thread(_stop, server)
