"""The plugin's fixtures drive a stack the user already runs (`--pipeline-attach`).

The test that runs there is the README's ten-line example, taken from the README.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The README's end-to-end example test, as written there."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    [example] = [block for block in blocks if "pipeline_bot" in block]
    return example


def test_readme_example_is_ten_lines() -> None:
    """The README's example test is at most ten lines, blank lines included."""
    assert len(readme_example().strip().splitlines()) <= 10


async def test_readme_example_passes_against_a_running_stack(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """`recipe-pipeline up` runs; pytest with --pipeline-attach=<its ready file> runs
    the README's example against it and passes; `up` then stops with 0."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FAVORITES_TOPIC": f"attached-{suffix}",
        "CONSUMER_GROUP": f"attached-store-{suffix}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'attached.db'}",
    }
    env.pop("API_TOKEN", None)
    ready = tmp_path / "stack.json"
    up = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "recipe_pipeline", "up",
        "--ready-file", str(ready), "--data-dir", str(tmp_path / "stack"),
        env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            while not ready.exists():
                assert up.returncode is None, "recipe-pipeline up exited early"
                await asyncio.sleep(0.1)
        assert {"kafka_bootstrap", "backend_url", "database_url"} <= set(
            json.loads(ready.read_text())
        )
        test_file = tmp_path / "test_from_readme.py"
        test_file.write_text(readme_example())

        pytest_run = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pytest", str(test_file), "-q",
            "-p", "no:cacheprovider", f"--pipeline-attach={ready}",
            f"--rootdir={tmp_path}", "-o", "asyncio_mode=auto",
            env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(pytest_run.communicate(), timeout=120)
    finally:
        up.send_signal(signal.SIGTERM)
        _out, up_err = await asyncio.wait_for(up.communicate(), timeout=60)

    text = output.decode()
    assert pytest_run.returncode == 0, text
    assert "1 passed" in text
    assert up.returncode == 0, up_err.decode()[-2000:]
