"""``recipe-pipeline up`` as a user runs it: ready file, answering services, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow


async def wait_for_file(path: Path, process: asyncio.subprocess.Process) -> dict:
    deadline = time.monotonic() + 180
    while not await asyncio.to_thread(path.exists):
        if process.returncode is not None:
            raise AssertionError(f"up exited with {process.returncode} before ready")
        if time.monotonic() > deadline:
            raise AssertionError("up did not write its ready file within 180 s")
        await asyncio.sleep(0.1)
    return json.loads(await asyncio.to_thread(path.read_text))


def read_private(path: str) -> tuple[str, int]:
    file = Path(path)
    return file.read_text(), file.stat().st_mode


async def test_up_serves_the_stack_and_stops_cleanly_on_sigterm(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """up writes the addresses once the backend answers; SIGTERM ends it with 0 and
    leaves no child process behind; the token is in a private file, not the output."""
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FAVORITES_TOPIC": f"up-{uuid.uuid4().hex[:8]}",
        "CONSUMER_GROUP": f"up-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'favorites.db'}",
    }
    env.pop("API_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "up",
        "--data-dir",
        str(tmp_path / "stack"),
        "--ready-file",
        str(ready),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        payload = await wait_for_file(ready, process)
        children = psutil.Process(process.pid).children(recursive=True)
        async with httpx.AsyncClient(base_url=payload["backend_url"]) as client:
            health = await client.get("/healthz")
        token, mode = await asyncio.to_thread(read_private, payload["api_token_file"])

        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert health.status_code == 200
    assert payload["kafka_bootstrap"] == kafka_bootstrap
    assert payload["database_url"] == env["DATABASE_URL"]
    assert mode & 0o077 == 0
    assert process.returncode == 0
    assert len(children) == 2
    assert not [child for child in children if child.is_running()]
    assert token.encode() not in stdout + stderr
    assert b"[backend]" in stderr
