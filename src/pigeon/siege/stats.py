"""Per-second buckets and the summaries made from them. Pure: no clocks, no I/O.

Conventions, chosen so that a good number cannot hide a bad run:

* A legitimate send is counted in the second it was *issued* (not answered), so a stall
  shows where it began.
* A send succeeds if acknowledged within the timeout. A send that fails (timeout or error)
  enters the latency percentiles at the timeout value: p99 cannot look good while more than
  1% of the sends fail.
* Attacker counts are events per second, except ``held``: sockets open at the end of the
  second (over several seconds: the highest of those).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .attackers import EVENTS

PHASES = ("baseline", "attack", "recovery")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted values; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Second:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)    # ok ones, and failures at timeout
    errors: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    delivery_latencies: list[float] = field(default_factory=list)
    logins: int = 0
    logins_ok: int = 0
    login_errors: Counter[str] = field(default_factory=Counter)
    newcomers: int = 0                 # --newcomers: sign-ups during the attack, timed
    newcomers_ok: int = 0              # ... done within --newcomer-timeout
    newcomer_seconds: list[float] = field(default_factory=list)  # every one, failed ones too
    newcomer_errors: Counter[str] = field(default_factory=Counter)
    attack: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: dict[str, float | None] = field(default_factory=dict)
    harness: dict[str, float | None] = field(default_factory=dict)


class RunStats:
    """Everything measured in one run, by second since the run's start."""

    def __init__(self, timeout: float, newcomer_timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.newcomer_timeout = newcomer_timeout
        self.seconds: dict[int, Second] = {}

    def at(self, sec: int) -> Second:
        bucket = self.seconds.get(sec)
        if bucket is None:
            bucket = self.seconds[sec] = Second()
        return bucket

    # -- legitimate traffic ------------------------------------------------------------------
    def issued(self, sec: int) -> None:
        self.at(sec).sent += 1

    def acked(self, sec: int, latency: float) -> None:
        bucket = self.at(sec)
        if latency <= self.timeout:
            bucket.ok += 1
            bucket.latencies.append(latency)
        else:
            self.failed(sec, "TIMEOUT")

    def failed(self, sec: int, code: str) -> None:
        bucket = self.at(sec)
        bucket.failed += 1
        bucket.errors[code] += 1
        bucket.latencies.append(self.timeout)

    def expire_pending(self) -> None:
        """Count every send still unanswered as timed out (the run is over)."""
        for sec, bucket in list(self.seconds.items()):
            for _ in range(bucket.sent - bucket.ok - bucket.failed):
                self.failed(sec, "TIMEOUT")

    def delivered(self, sec: int, latency: float) -> None:
        bucket = self.at(sec)
        bucket.delivered += 1
        bucket.delivery_latencies.append(latency)

    def login(self, sec: int, error: str | None) -> None:
        bucket = self.at(sec)
        bucket.logins += 1
        if error is None:
            bucket.logins_ok += 1
        else:
            bucket.login_errors[error] += 1

    def newcomer(self, sec: int, took: float, error: str | None) -> None:
        """A newcomer that began signing up in ``sec``: done after ``took`` seconds, or
        failed. Done but later than the newcomer timeout counts as SLOW."""
        bucket = self.at(sec)
        bucket.newcomers += 1
        bucket.newcomer_seconds.append(took)
        if error is None and took > self.newcomer_timeout:
            error = "SLOW"
        if error is None:
            bucket.newcomers_ok += 1
        else:
            bucket.newcomer_errors[error] += 1

    # -- attack and machine --------------------------------------------------------------------
    def attack_counts(self, sec: int, modes: dict[str, dict[str, Any]]) -> None:
        """Merge one report of the attacker process (reports for a second may repeat)."""
        bucket = self.at(sec)
        for mode, counts in modes.items():
            into = bucket.attack.setdefault(mode, {**dict.fromkeys(EVENTS, 0), "held": 0,
                                                   "error_codes": {}})
            for name in EVENTS:
                into[name] += int(counts.get(name, 0))
            into["held"] = max(into["held"], int(counts.get("held", 0)))
            codes = Counter(into["error_codes"])
            codes.update(counts.get("error_codes", {}))
            into["error_codes"] = dict(codes)

    def sample(self, sec: int, server: dict[str, float | None],
               harness: dict[str, float | None]) -> None:
        bucket = self.at(sec)
        bucket.server, bucket.harness = server, harness


def phase_of(sec: int, window: tuple[float, float]) -> str:
    start, end = window
    if sec + 1 <= start:
        return "baseline"
    if sec < end:
        return "attack"
    return "recovery"


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 5) if whole else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _attack_total(buckets: list[Second]) -> dict[str, Any]:
    """Attack counts over many seconds: events summed, ``held`` the peak, per mode and all."""
    by_mode: dict[str, dict[str, Any]] = {}
    for bucket in buckets:
        for mode, counts in bucket.attack.items():
            into = by_mode.setdefault(mode, {**dict.fromkeys(EVENTS, 0), "held": 0,
                                             "error_codes": Counter()})
            for name in EVENTS:
                into[name] += counts[name]
            into["held"] = max(into["held"], counts["held"])
            into["error_codes"].update(counts["error_codes"])
    all_modes: dict[str, Any] = {**dict.fromkeys(EVENTS, 0), "held": 0}
    for counts in by_mode.values():
        for name in EVENTS:
            all_modes[name] += counts[name]
        all_modes["held"] += counts["held"]
        counts["error_codes"] = dict(counts["error_codes"].most_common())
    all_modes["admitted"] = admitted(all_modes)
    return {**all_modes, "by_mode": by_mode}


def admitted(counts: dict[str, Any]) -> int:
    """Attacker work the server took on: connections it accepted plus calls and frames it
    answered by doing the work (not by refusing)."""
    return int(counts.get("conns_accepted", 0)) + int(counts.get("answered", 0))


def summarize(buckets: list[Second], timeout: float) -> dict[str, Any]:
    """Totals over a list of seconds (a phase, or the whole run)."""
    sent = sum(b.sent for b in buckets)
    ok = sum(b.ok for b in buckets)
    failed = sum(b.failed for b in buckets)
    latencies = [x for b in buckets for x in b.latencies]
    delivery = [x for b in buckets for x in b.delivery_latencies]
    errors: Counter[str] = Counter()
    login_errors: Counter[str] = Counter()
    newcomer_errors: Counter[str] = Counter()
    for b in buckets:
        errors.update(b.errors)
        login_errors.update(b.login_errors)
        newcomer_errors.update(b.newcomer_errors)
    newcomer_seconds = [x for b in buckets for x in b.newcomer_seconds]
    cpu = [x for b in buckets if (x := b.server.get("cpu_percent")) is not None]
    rss = [x for b in buckets if (x := b.server.get("rss_mb")) is not None]
    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 1) if values else None

    def harness(name: str) -> float | None:
        return mean([x for b in buckets if (x := b.harness.get(name)) is not None])

    logins = sum(b.logins for b in buckets)
    logins_ok = sum(b.logins_ok for b in buckets)
    return {
        "seconds": len(buckets),
        "legit": {
            "sent": sent, "ok": ok, "failed": failed,
            "pending": max(0, sent - ok - failed),
            "success_rate": _rate(ok, sent),
            "p50_ms": _ms(percentile(latencies, 0.50)),
            "p99_ms": _ms(percentile(latencies, 0.99)),
            "max_ms": _ms(max(latencies)) if latencies else None,
            "delivered": sum(b.delivered for b in buckets),
            # of the sends issued: a send that timed out may still arrive later
            "delivery_rate": _rate(sum(b.delivered for b in buckets), sent),
            "delivery_p99_ms": _ms(percentile(delivery, 0.99)),
            "errors": dict(errors.most_common()),
            "logins": logins, "logins_ok": logins_ok,
            "login_success_rate": _rate(logins_ok, logins),
            "login_errors": dict(login_errors.most_common()),
            "newcomers": sum(b.newcomers for b in buckets),
            "newcomers_ok": sum(b.newcomers_ok for b in buckets),
            "newcomer_p50_s": _s(percentile(newcomer_seconds, 0.50)),
            "newcomer_max_s": _s(max(newcomer_seconds)) if newcomer_seconds else None,
            "newcomer_errors": dict(newcomer_errors.most_common()),
        },
        "attack": _attack_total(buckets),
        "server": {
            "cpu_mean_percent": mean(cpu),
            "cpu_peak_percent": round(max(cpu), 1) if cpu else None,
            "rss_peak_mb": round(max(rss), 1) if rss else None,
            "rss_last_mb": round(rss[-1], 1) if rss else None,
        },
        # The machine is shared: if it is saturated, the numbers measure it as much as the
        # server (100 = one core for processes; 100 = every core for the machine).
        "harness": {
            "siege_cpu_mean_percent": harness("siege_cpu_percent"),
            "attackers_cpu_mean_percent": harness("attackers_cpu_percent"),
            "machine_cpu_mean_percent": harness("machine_cpu_percent"),
        },
    }


def series(stats: RunStats, seconds: int, window: tuple[float, float]) -> list[dict[str, Any]]:
    """The per-second rows of the report."""
    rows = []
    for sec in range(seconds):
        bucket = stats.at(sec)
        one = summarize([bucket], stats.timeout)
        rows.append({"t": sec, "phase": phase_of(sec, window), "legit": one["legit"],
                     "attack": one["attack"], "server": bucket.server,
                     "harness": bucket.harness})
    return rows


def totals(stats: RunStats, seconds: int, window: tuple[float, float]) -> dict[str, Any]:
    buckets = {phase: [] for phase in PHASES}  # type: dict[str, list[Second]]
    for sec in range(seconds):
        buckets[phase_of(sec, window)].append(stats.at(sec))
    out = {phase: summarize(b, stats.timeout) for phase, b in buckets.items()}
    out["all"] = summarize([stats.at(sec) for sec in range(seconds)], stats.timeout)
    return out
