"""Prometheus metrics, on a registry of their own (one per server, so tests can run many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pigeon.store.base import StoreStats


class _Callback(Collector):
    def __init__(self, read: Callable[[], Iterator[object]]) -> None:
        self._read = read

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        yield from self._read()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pigeon_requests", "Calls answered", ["method", "outcome"],
                                registry=r)
        self.request_seconds = Histogram(
            "pigeon_request_seconds", "Time from frame received to answer sent", ["method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.protocol_errors = Counter("pigeon_protocol_errors", "Frames refused", ["code"],
                                       registry=r)
        self.connections = Gauge("pigeon_connections", "Open client connections", registry=r)
        self.updates_pushed = Counter("pigeon_updates_pushed", "Updates pushed to devices",
                                      registry=r)
        self.slow_consumers = Counter("pigeon_slow_consumers_cut",
                                      "Connections closed for not reading", registry=r)
        self.codes_sent = Counter("pigeon_login_codes_sent", "Login codes sent", registry=r)
        self.codes_in_app = Counter("pigeon_login_codes_in_app",
                                    "Login codes delivered to logged-in devices", registry=r)
        self.reports = Counter("pigeon_abuse_reports", "Abuse reports filed (pigeon admin "
                               "reports lists them)", registry=r)
        self._request_children: dict[tuple[str, str], Any] = {}
        self._seconds_children: dict[str, Any] = {}

    def count_request(self, method: str, outcome: str, seconds: float) -> None:
        """Per-call accounting; the labelled children are cached, as labels() is a locked
        dictionary lookup that showed up in profiles of the send path."""
        key = (method, outcome)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(method, outcome)
        child.inc()
        timer = self._seconds_children.get(method)
        if timer is None:
            timer = self._seconds_children[method] = self.request_seconds.labels(method)
        timer.observe(seconds)

    def add_store_stats(self, read_stats: Callable[[], StoreStats]) -> None:
        """The store's write counters (``Store.stats``), whichever backend it is."""

        def read() -> Iterator[object]:
            stats = read_stats()
            c = CounterMetricFamily("pigeon_store_commits", "Group commits to the store")
            c.add_metric([], stats.commits)
            yield c
            j = CounterMetricFamily("pigeon_store_jobs", "Writes committed (sum of batch sizes)")
            j.add_metric([], stats.writes)
            yield j
            s = CounterMetricFamily("pigeon_store_commit_seconds", "Time spent committing")
            s.add_metric([], stats.commit_seconds)
            yield s
            b = GaugeMetricFamily("pigeon_store_last_batch", "Jobs in the last group commit")
            b.add_metric([], stats.last_batch)
            yield b
            p = GaugeMetricFamily("pigeon_store_connections",
                                  "Database connections open (0: embedded store)")
            p.add_metric([], stats.connections)
            yield p
            r = CounterMetricFamily("pigeon_store_retried",
                                    "Writes retried alone after their batch failed them")
            r.add_metric([], stats.retried)
            yield r
            f = CounterMetricFamily("pigeon_store_failed_batches",
                                    "Batches lost to a database connection failure")
            f.add_metric([], stats.failed_batches)
            yield f
            t = CounterMetricFamily("pigeon_store_together",
                                    "Writes done together with others of their kind (three "
                                    "statements for a run of private sends)")
            t.add_metric([], stats.together)
            yield t

        self.registry.register(_Callback(read))

    def add_bus(self, bus: Any) -> None:
        """Whether the bus is connected, and its counters (a networked bus's frames)."""

        def read() -> Iterator[object]:
            health = bus.health()
            g = GaugeMetricFamily("pigeon_bus_connected", "1 while the bus reaches its peers",
                                  labels=["kind"])
            g.add_metric([health["kind"]], 1 if health["connected"] else 0)
            yield g
            frames = CounterMetricFamily("pigeon_bus_frames", "Frames through the bus",
                                         labels=["what"])
            for what in ("published", "received", "dropped", "malformed"):
                if what in health:
                    frames.add_metric([what], health[what])
            yield frames

        self.registry.register(_Callback(read))

    def add_regions(self, regions: Any) -> None:
        """Per other region: reachable, outbox depth, consumer lag; and message counters."""

        def read() -> Iterator[object]:
            health = regions.health()
            gauges = {name: GaugeMetricFamily(f"pigeon_region_{name}", text, labels=["region"])
                      for name, text in (
                          ("reachable", "1 while that region's stream answers"),
                          ("outbox", "Messages committed here, waiting to reach that region"),
                          ("lag", "That region's messages not yet applied here"))}
            for other, figures in health["others"].items():
                for name, gauge in gauges.items():
                    gauge.add_metric([other], int(figures[name]))
            yield from gauges.values()
            counter = CounterMetricFamily("pigeon_region_messages",
                                          "Cross-region messages", labels=["what"])
            for what in ("relayed", "applied", "dropped", "typing_dropped"):
                counter.add_metric([what], health[what])
            yield counter
            calls = CounterMetricFamily("pigeon_region_group_calls",
                                        "Calls in groups of other regions (forwarded from "
                                        "here) and from them (answered or refused here)",
                                        labels=["what"])
            for what, count in health.get("group_calls", {}).items():
                calls.add_metric([what], count)
            yield calls

        self.registry.register(_Callback(read))

    def add_shield(self, shield: Any) -> None:
        """Gauges and counters read from the shield's own state at scrape time."""

        def read() -> Iterator[object]:
            status = shield.status()
            adm = status["admission"]
            g = GaugeMetricFamily("pigeon_shield_connections", "Admitted connections",
                                  labels=["pool"])
            g.add_metric(["all"], adm.get("open", 0))
            g.add_metric(["unauthenticated"], adm.get("unauthenticated", 0))
            yield g
            refused = CounterMetricFamily("pigeon_shield_refused", "Work refused by the shield",
                                          labels=["reason"])
            for reason, count in status["refused"].items():
                refused.add_metric([reason], count)
            for reason, count in adm.get("refused", {}).items():
                refused.add_metric(["admission_" + reason], count)
            yield refused
            evicted = CounterMetricFamily("pigeon_shield_evicted", "Unauthenticated idlers evicted")
            evicted.add_metric([], adm.get("evicted", 0))
            yield evicted
            classes = status["classes"]
            shed = CounterMetricFamily("pigeon_shield_shed", "Calls shed by class",
                                       labels=["class"])
            delay = GaugeMetricFamily("pigeon_shield_queue_delay_seconds",
                                      "Last queue delay by class", labels=["class"])
            admitted = CounterMetricFamily("pigeon_shield_admitted", "Calls admitted by class",
                                           labels=["class"])
            for name, c in classes.items():
                shed.add_metric([str(name)], c.get("shed", 0))
                delay.add_metric([str(name)], c.get("last_queue_delay", 0.0))
                admitted.add_metric([str(name)], c.get("admitted", 0))
            yield shed
            yield delay
            yield admitted
            pow_ = GaugeMetricFamily("pigeon_shield_pow_difficulty", "Proof-of-work bits required")
            pow_.add_metric([], status["pow_difficulty"])
            yield pow_
            lag = GaugeMetricFamily("pigeon_shield_loop_lag_seconds",
                                    "How late the event loop runs timers (overload)")
            lag.add_metric([], status.get("loop_lag", 0.0))
            yield lag
            bans = GaugeMetricFamily("pigeon_shield_banned", "Addresses and prefixes banned now")
            bans.add_metric([], status["bans"].get("banned_addresses", 0)
                            + status["bans"].get("banned_prefixes", 0))
            yield bans

        self.registry.register(_Callback(read))
