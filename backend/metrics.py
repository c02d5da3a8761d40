"""Prometheus metrics of one backend app, in the app's own registry.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so several apps
in one process (tests, the benchmark) never share or clash over counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class BackendMetrics:
    """Requests by route and status, publish latency and publish failures."""

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "backend_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.publish_seconds = Histogram(
            "backend_publish_seconds",
            "Time from sending a favourite event to the broker's acknowledgement.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "backend_publish_failures",
            "Publishes that got no acknowledgement, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
