"""Prometheus metrics: HTTP latency by route, and job gauges read from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMetrics:
    """ASGI middleware timing every request under its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "tag2mask_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


JOB_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600)


@dataclass
class JobStats:
    """What the job collector reads from the database at each scrape."""

    counts: list[tuple[str, str, int]]  # (kind, status, n)
    durations: list[tuple[str, float]]  # (kind, seconds from start to finish) of recent jobs
    queue_waits: list[tuple[str, float]]  # (kind, seconds from creation to first start)


def _histogram(name: str, doc: str, samples: list[tuple[str, float]]) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc, labels=["kind"])
    by_kind: dict[str, list[float]] = {}
    for kind, value in samples:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in sorted(by_kind.items()):
        buckets = [(str(b), sum(v <= b for v in values)) for b in JOB_BUCKETS]
        buckets.append(("+Inf", len(values)))
        h.add_metric([kind], buckets, sum_value=sum(values))
    return h


class JobCollector(Collector):
    """Job gauges and histograms computed at scrape time: the database is the source of truth,
    and workers on other machines need no metrics endpoint of their own."""

    def __init__(self, read_stats: Callable[[], JobStats]) -> None:
        self._read_stats = read_stats

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self._read_stats()
        except Exception:  # a scrape must not fail because the database is down
            return
        g = GaugeMetricFamily("tag2mask_jobs", "Jobs by kind and status", labels=["kind", "status"])
        for kind, status, n in stats.counts:
            g.add_metric([kind, status], n)
        yield g
        yield _histogram(
            "tag2mask_job_duration_seconds", "Run time of recently finished jobs", stats.durations
        )
        yield _histogram(
            "tag2mask_job_queue_wait_seconds",
            "Wait from creation to start of recently started jobs",
            stats.queue_waits,
        )
