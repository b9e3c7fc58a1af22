"""Prometheus metrics, on a registry of their own (one per server, so tests can run many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


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

    def add_store_stats(self, stats: object) -> None:
        def read() -> Iterator[object]:
            c = CounterMetricFamily("pigeon_store_commits", "Group commits to the store")
            c.add_metric([], getattr(stats, "batches"))
            yield c
            j = CounterMetricFamily("pigeon_store_jobs", "Writes committed (sum of batch sizes)")
            j.add_metric([], getattr(stats, "jobs"))
            yield j
            s = CounterMetricFamily("pigeon_store_commit_seconds", "Time spent committing")
            s.add_metric([], getattr(stats, "commit_seconds"))
            yield s
            b = GaugeMetricFamily("pigeon_store_last_batch", "Jobs in the last group commit")
            b.add_metric([], getattr(stats, "last_batch"))
            yield b

        self.registry.register(_Callback(read))
