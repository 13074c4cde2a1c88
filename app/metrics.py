"""Prometheus metrics: HTTP latency by route, and job gauges read from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
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


class JobCollector(Collector):
    """Jobs by kind and status, read at scrape time (the database is the source of truth)."""

    def __init__(self, count_jobs: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._count_jobs = count_jobs

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = GaugeMetricFamily("tag2mask_jobs", "Jobs by kind and status", labels=["kind", "status"])
        try:
            for kind, status, n in self._count_jobs():
                g.add_metric([kind, status], n)
        except Exception:  # a scrape must not fail because the database is down
            pass
        yield g
