"""A tiny benchmark run on the real broker, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Figures a run reports, in table order.
FIGURES = [
    "api_accept_rate",
    "store_rate",
    "e2e_rate",
    "e2e_latency_p50",
    "e2e_latency_p99",
    "dashboard_key_to_update",
    "dashboard_memory",
]
#: Bound on the whole tiny run (broker already running).
RUN_TIMEOUT_S = 150


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_tiny_run_reports_every_figure_with_its_baseline(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A tiny `bench --quick` run writes JSON with every figure and, for each figure
    judged against a baseline, both the value and the baseline measured."""
    out = tmp_path / "bench.json"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipe_pipeline",
            "bench",
            "--quick",
            "--seconds",
            "1",
            "--store-events",
            "1000",
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    figures = {entry["key"]: entry for entry in json.loads(out.read_text())["figures"]}
    assert list(figures) == FIGURES
    with_baseline = [key for key in FIGURES if not key.startswith("dashboard")]
    missing = [
        key
        for key in with_baseline
        if figures[key]["value"] is None or figures[key]["baseline"] is None
    ]
    assert missing == [], {key: figures[key]["error"] for key in missing}
