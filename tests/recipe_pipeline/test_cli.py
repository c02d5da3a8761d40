"""The command line's shared promises: one-line failures and honest ready files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_unusable_data_dir_fails_in_one_line(tmp_path: Path) -> None:
    """A data dir that cannot be made ends `broker` with exit 1 and one line naming
    the path, no traceback."""
    result = _run("broker", "--data-dir", "/dev/null/kafka", cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("recipe-pipeline broker: ")
    assert "/dev/null" in lines[-1]


def test_stale_ready_file_is_removed_before_start(tmp_path: Path) -> None:
    """A ready file from an earlier run is gone as soon as a new run begins, even
    when that run then fails."""
    ready = tmp_path / "ready.json"
    ready.write_text('{"kafka_bootstrap": "127.0.0.1:1"}')

    result = _run(
        "broker", "--ready-file", str(ready), "--data-dir", "/dev/null/x", cwd=tmp_path
    )

    assert result.returncode == 1
    assert not ready.exists()


@pytest.mark.slow
def test_ready_file_is_removed_when_the_broker_stops(tmp_path: Path) -> None:
    """`broker --ready-file` writes the file while it runs and removes it on a clean
    stop, so no script finds the address of a broker that is gone."""
    import json
    import signal
    import time

    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "recipe_pipeline", "broker", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.1)
        assert "kafka_bootstrap" in json.loads(ready.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)

    assert process.returncode == 0
    assert not ready.exists()
