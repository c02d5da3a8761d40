"""The dashboard figures: key-press-to-update time and memory under a message flood.

Measured last (or alone, with ``recipe-pipeline bench --only dashboard``). The real
dashboard app runs in a child process (:mod:`recipe_pipeline.bench.dashboard_probe`),
attached to the end-to-end phase's backend and database (without that phase: a
refused backend address), with its topic panel reading a topic of its own that this
process feeds at ``dashboard_rate`` valid events per second. The probe times key
presses until a rendered frame shows their effect and samples its own RSS; a failure
there makes the two figures "not measured", with the reason, rather than ending the
run.

With ``RECIPE_BENCH_DASHBOARD_PROFILE=PATH`` in the environment the probe runs under
cProfile and writes its statistics to ``PATH`` (slower figures; for finding where
the time goes, not for the report).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recipe_pipeline.bench.report import Figure, Goal, percentile

if TYPE_CHECKING:
    from recipe_pipeline.bench.runner import Run

logger = logging.getLogger(__name__)

#: The goals (absolute: there is no baseline for a screen).
KEY_TO_UPDATE_MS = 100.0
MEMORY_MB = 250.0
#: Seconds the probe's topic panel gets to warm up under the flood.
WARMUP_S = 2.0
#: The environment variable naming a file for the probe's cProfile statistics.
PROFILE_ENV = "RECIPE_BENCH_DASHBOARD_PROFILE"


def dashboard_figures(
    rate: float,
    key_ms: list[float] | None,
    rss_mb: list[float] | None,
    *,
    note: str = "",
    error: str | None = None,
) -> list[Figure]:
    """The two dashboard figures: p99 key-press-to-update and peak RSS."""
    return [
        Figure(
            key="dashboard_key_to_update",
            name=f"dashboard key-press to update p99, {rate:,.0f} msgs/s",
            unit="ms",
            value=percentile(key_ms, 99) if key_ms else None,
            baseline=None,
            baseline_name="none: absolute goal",
            goal=Goal(below_value=KEY_TO_UPDATE_MS),
            note=note,
            error=error,
        ),
        Figure(
            key="dashboard_memory",
            name=f"dashboard memory (peak RSS), {rate:,.0f} msgs/s",
            unit="MB",
            value=max(rss_mb) if rss_mb else None,
            baseline=None,
            baseline_name="none: absolute goal",
            goal=Goal(below_value=MEMORY_MB),
            note=note,
            error=error,
        ),
    ]


async def measure_dashboard(run: Run) -> list[Figure]:
    """Measure the dashboard, or say why it could not be measured."""
    rate = run.config.dashboard_rate
    try:
        import tui.app  # noqa: F401
    except ImportError as exc:
        return dashboard_figures(
            rate, None, None, error=f"the dashboard app is not there ({exc})"
        )
    try:
        result = await _measure(run)
    except Exception as exc:  # reported in the figures (and logged); the run goes on
        logger.warning("dashboard measurement failed", exc_info=True)
        return dashboard_figures(rate, None, None, error=f"probe failed: {exc}")
    key_ms, rss_mb = result["key_ms"], result["rss_mb"]
    note = (
        f"{len(key_ms)} presses of 'p' (pause/resume the topic view), time until a"
        f" rendered frame shows the new state; p50 {percentile(key_ms, 50):.1f} ms,"
        f" max {max(key_ms):.1f} ms; feed kept {result['fed_rate']:,.0f} msgs/s,"
        f" panel took in {int(result['seen'][0]):,} records, RSS then"
        f" {result['rss_mb_end'][0]:.1f} MB"
        if key_ms
        else "no press was measured"
    )
    return dashboard_figures(rate, key_ms, rss_mb, note=note)


async def _measure(run: Run) -> dict[str, Any]:
    from pipeline_core.stack.topics import ensure_topics

    topic = run.topic("dash")
    await ensure_topics(
        run.bootstrap, [topic, f"{topic}.dlq"], partitions=3, timeout=30
    )
    out = run.config.work_dir / "dashboard-probe.json"
    env = run.child_env("e2e")
    with socket.socket() as no_backend:
        # without the end-to-end phase's backend: a port of ours, bound but not
        # listening, so the dashboard's health probe is refused at once
        no_backend.bind(("127.0.0.1", 0))
        backend_url = run.backend_url or (
            f"http://127.0.0.1:{no_backend.getsockname()[1]}"
        )
        return await _run_probe(run, topic, backend_url, env, out)


async def _run_probe(
    run: Run, topic: str, backend_url: str, env: dict[str, str], out: Path
) -> dict[str, Any]:
    from pipeline_core.stack.process import ComponentProcess
    from recipe_pipeline.bench.kafka_baselines import feed_paced

    argv = [
        sys.executable, "-m", "recipe_pipeline.bench.dashboard_probe",
        "--bootstrap", run.bootstrap, "--topic", topic,
        "--group", env["CONSUMER_GROUP"], "--backend-url", backend_url,
        "--database-url", env["DATABASE_URL"],
        "--seconds", str(run.config.dashboard_seconds),
        "--warmup", str(WARMUP_S), "--out", str(out),
    ]  # fmt: skip
    profile = os.environ.get(PROFILE_ENV)
    if profile:
        argv += ["--profile", profile]
    probe = ComponentProcess(
        "dashboard-probe", argv, env=env, run_dir=run.config.work_dir / "run"
    )
    run.exits.push_async_callback(probe.stop, 20.0)
    await probe.start(90.0)
    run.progress(f"  dashboard live; feeding {run.config.dashboard_rate:g} msgs/s")
    feed_for = WARMUP_S + run.config.dashboard_seconds + 30
    started = time.perf_counter()
    sent = [0]
    feeder = asyncio.create_task(
        feed_paced(run.bootstrap, topic, run.config.dashboard_rate, feed_for, sent)
    )
    try:
        while True:
            if not probe.is_alive or time.perf_counter() - started > feed_for:
                break
            await asyncio.sleep(0.1)
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
    elapsed = time.perf_counter() - started
    await probe.stop(20.0)
    text = await asyncio.to_thread(_read_result, out)
    if text is None:
        raise RuntimeError(f"the probe wrote no result; see {probe.log_path}")
    result: dict[str, Any] = json.loads(text)
    result["fed_rate"] = sent[0] / elapsed if elapsed else 0.0
    return result


def _read_result(out: Path) -> str | None:
    """The probe's result file, ``None`` when it wrote none."""
    return out.read_text() if out.is_file() else None
