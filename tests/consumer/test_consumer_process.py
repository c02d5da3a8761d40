"""``python -m recipe_pipeline consumer`` as a real process: crashes and stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumer.store import FavoriteStore, StoredRecord
from pipeline_core.storage import AppliedEvent, Favorite
from tests.consumer.conftest import Pipeline, event, produce, total_lag, wait_until

pytestmark = pytest.mark.slow


@asynccontextmanager
async def consumer_process(
    pipeline: Pipeline, tmp_path: Path, *, max_batch: int = 2000
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    """Start the consumer subcommand; yield it and its ready file once written.

    Its log goes to a file in ``tmp_path``. On exit a process still running is
    sent SIGKILL (by its own pid).
    """
    name = f"consumer-{os.urandom(4).hex()}"
    ready_file = tmp_path / f"{name}.ready.json"
    with (tmp_path / f"{name}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recipe_pipeline",
            "consumer",
            "--ready-file",
            str(ready_file),
            "--max-batch",
            str(max_batch),
            env=pipeline.env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    try:
        await wait_until(
            lambda: ready_file.exists() or process.returncode is not None,
            60,
            "the consumer's ready file",
        )
        assert process.returncode is None, (tmp_path / f"{name}.log").read_text()
        yield process, json.loads(ready_file.read_text())
    finally:
        if process.returncode is None:
            process.kill()
        async with asyncio.timeout(30):
            await process.wait()


def metric(metrics_url: str, name: str) -> float:
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {metrics_url}")


async def lag_is_zero(pipeline: Pipeline) -> bool:
    return await total_lag(pipeline) == 0


async def test_crash_after_database_commit_before_offset_commit_is_absorbed(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The state a kill -9 between the database commit and the offset commit
    leaves (event applied, offset not committed): on restart exactly one row, and
    the redelivered record is counted as a duplicate."""
    favourite = event(user="77", recipe="5")
    await produce(pipeline, [favourite])
    # What the killed consumer had done: applied the event, committed no offset.
    FavoriteStore(pipeline.engine).apply_batch(
        [StoredRecord(pipeline.topic, 0, 0, favourite)]
    )

    async with consumer_process(pipeline, tmp_path) as (_process, ready):
        await wait_until(lambda: lag_is_zero(pipeline), 60, "lag 0")
        duplicates = metric(ready["metrics_url"], "consumer_events_duplicate_total")
        applied = metric(ready["metrics_url"], "consumer_events_applied_total")

    assert (duplicates, applied) == (1.0, 0.0)
    assert pipeline.count(Favorite) == 1


async def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """SIGKILL the consumer while it stores 6,000 events, restart it: every
    favourite stored, every event applied exactly once, lag 0."""
    events = [event(user=str(300_000 + n), recipe=str(n % 9 + 1)) for n in range(6000)]
    await produce(pipeline, events)

    async with consumer_process(pipeline, tmp_path, max_batch=50) as (process, _r):
        await wait_until(lambda: pipeline.count(Favorite) >= 200, 60, "first rows")
        process.send_signal(signal.SIGKILL)
        async with asyncio.timeout(30):
            await process.wait()
    stored_before_restart = pipeline.count(Favorite)

    async with consumer_process(pipeline, tmp_path) as (_process, _ready):
        await wait_until(lambda: pipeline.count(Favorite) == 6000, 120, "6000 rows")
        await wait_until(lambda: lag_is_zero(pipeline), 60, "lag 0")

    assert stored_before_restart < 6000, "the kill came after the stream ended"
    assert pipeline.count(AppliedEvent) == 6000
    assert pipeline.favourites() == {(e.user_id, e.recipe_id) for e in events}


async def test_sigterm_commits_leaves_the_group_and_exits_zero(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """SIGTERM: the consumer exits 0 with its offsets committed (lag 0)."""
    await produce(pipeline, [event(user=str(400 + n)) for n in range(300)])

    async with consumer_process(pipeline, tmp_path) as (process, ready):
        await wait_until(lambda: pipeline.count(Favorite) == 300, 60, "300 rows")
        assert ready["group"] == pipeline.group
        assert ready["topic"] == pipeline.topic
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await process.wait()

    assert code == 0
    assert await total_lag(pipeline) == 0


async def run_to_exit(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "consumer",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        _out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_unreachable_broker_exits_1_naming_the_address(
    pipeline: Pipeline,
) -> None:
    """With nothing listening at KAFKA_BOOTSTRAP_SERVERS the consumer exits 1 and
    its last line names the address and what to check."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"

    code, err = await run_to_exit(
        {**pipeline.env(), "KAFKA_BOOTSTRAP_SERVERS": address}
    )

    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("recipe-pipeline consumer:")
    assert address in last


async def test_database_that_cannot_be_opened_exits_1(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A DATABASE_URL whose folder is a file exits 1 with a line naming
    DATABASE_URL, before reading any record."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    url = f"sqlite:///{blocker / 'favorites.db'}"

    code, err = await run_to_exit({**pipeline.env(), "DATABASE_URL": url})

    assert code == 1
    assert "DATABASE_URL" in err.strip().splitlines()[-1]
