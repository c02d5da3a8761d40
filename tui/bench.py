"""Benchmark the dashboard under load: key press to screen update, and memory.

``python -m tui.bench [--rate 2000] [--messages 100000]`` attaches a headless
dashboard (Textual's Pilot, 180x50) to a topic of its own on the embedded broker
(or ``KAFKA_BOOTSTRAP_SERVERS``), produces valid events at ``--rate`` per second
from a separate process, and meanwhile:

* presses ``p`` (pause or resume the topic view) every half second, as a key
  event posted to the app, and times it until the topic panel's title holds the
  new state (queueing, binding lookup and handler; the paint follows on the
  app's next refresh), and
* reads this process's resident memory once ``--messages`` records went through
  the topic panel.

It prints one JSON object with the figures (this is a command, not library code).
No backend, consumer or bot runs: the figures are the dashboard's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import psutil

from pipeline_core.stack.topics import ensure_topics
from tui.app import Addresses, DashboardApp, DashboardConfig

PRODUCER = """
import asyncio, sys, time
from aiokafka import AIOKafkaProducer
from pipeline_core.events import EventType, FavoriteEvent, encode_event

async def main(bootstrap, topic, rate, count):
    records = [encode_event(FavoriteEvent(type=EventType.ADDED,
        user_id=str(10**15 + index), user_name=f"bench-{index}",
        recipe_id=str(index % 100 + 1), trace_id=f"bench-{index:010d}"))
        for index in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        for index, (key, value, headers) in enumerate(records):
            await producer.send(topic, value, key=key, headers=headers)
            due = start + (index + 1) / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
        await producer.flush()
    finally:
        await producer.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
"""


class TimedDashboard(DashboardApp):
    """The dashboard, signalling each time the pause key was handled."""

    def __init__(self, config: DashboardConfig) -> None:
        super().__init__(config)
        self.toggled = asyncio.Event()

    def action_toggle_topic_pause(self) -> None:
        super().action_toggle_topic_pause()
        self.toggled.set()


async def bench(bootstrap: str, rate: float, messages: int) -> dict[str, object]:
    """Run the benchmark against ``bootstrap``; return the figures."""
    topic = f"dashboard-bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=3, timeout=30)
    with socket.socket() as no_backend:
        # a port of ours, bound but not listening: the health probe fails at once
        no_backend.bind(("127.0.0.1", 0))
        backend_url = f"http://127.0.0.1:{no_backend.getsockname()[1]}"
        return await _measure(bootstrap, topic, backend_url, rate, messages)


async def _measure(
    bootstrap: str, topic: str, backend_url: str, rate: float, messages: int
) -> dict[str, object]:
    app = TimedDashboard(
        DashboardConfig(
            topic=topic,
            group=f"{topic}-none",
            attach=Addresses(bootstrap, backend_url, "sqlite:///:memory:"),
            run_bot=False,
        )
    )
    latencies: list[float] = []
    async with app.run_test(size=(180, 50)) as pilot:
        while "live" not in str(app.query_one("#topic").border_subtitle):
            await pilot.pause(0.1)
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PRODUCER, bootstrap, topic, str(rate), str(messages)
        )
        started = time.monotonic()
        while app.records.seen < messages and producer.returncode is None:
            app.toggled.clear()
            pressed = time.perf_counter()
            app.simulate_key("p")
            await asyncio.wait_for(app.toggled.wait(), 60)
            latencies.append((time.perf_counter() - pressed) * 1000)
            await asyncio.sleep(0.5)
        await asyncio.wait_for(producer.wait(), 600)
        elapsed = time.monotonic() - started
        rss = psutil.Process(os.getpid()).memory_info().rss
        await app.shutdown()
    latencies.sort()
    return {
        "messages": app.records.seen,
        "target_rate": rate,
        "achieved_rate": round(app.records.seen / elapsed),
        "key_to_screen_ms": {
            "samples": len(latencies),
            "median": round(statistics.median(latencies), 1),
            "p95": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 1),
            "max": round(latencies[-1], 1),
        },
        "rss_mb_after": round(rss / 2**20, 1),
    }


async def main_async(rate: float, messages: int, data_dir: Path | None) -> None:
    """Start the embedded broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set."""
    async with AsyncExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            from pipeline_core.broker.embedded import EmbeddedBroker

            broker = await stack.enter_async_context(EmbeddedBroker(data_dir))
            bootstrap = broker.bootstrap_servers
        figures = await bench(bootstrap, rate, messages)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")


def main() -> int:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m tui.bench")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, help="broker data (default: temp)")
    args = parser.parse_args()
    asyncio.run(main_async(args.rate, args.messages, args.data_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
