"""The consumer's Prometheus metrics, served on a port of its own (127.0.0.1 only).

Each :class:`ConsumerMetrics` has its own registry, so several consumers (tests)
can live in one process without clashing.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)


class ConsumerMetrics:
    """Applied, duplicate and dead-lettered counts, batch latency, committed offsets."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.applied = Counter(
            "consumer_events_applied",
            "Events applied to the database (first time seen).",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "consumer_events_duplicate",
            "Events redelivered and absorbed because they were already applied.",
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "consumer_events_dead_lettered",
            "Records that did not decode and went to the dead-letter topic.",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "consumer_batch_seconds",
            "Time from a batch's arrival to its offsets being committed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.committed_offset = Gauge(
            "consumer_committed_offset",
            "The last offset committed by this consumer, per partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on 127.0.0.1:``port`` (0: a free one); return the port."""
        if self._server is not None:
            raise RuntimeError("the metrics server already runs; did you serve twice?")
        server, thread = start_http_server(
            port, addr="127.0.0.1", registry=self.registry
        )
        self._server, self._thread = server, thread
        return int(server.server_port)

    def close(self) -> None:
        """Stop the metrics server, if it runs."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
