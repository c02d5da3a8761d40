"""Running ``python -m recipe_pipeline backend`` as a real child process in tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bound on the backend answering after launch (jar-free, but Kafka setup included).
START_TIMEOUT_S = 60.0
#: Bound on the backend exiting after SIGTERM (publish deadline, grace, flush).
STOP_TIMEOUT_S = 30.0


@dataclass
class BackendProcess:
    """A running backend child: its process, ready-file contents and log file."""

    process: asyncio.subprocess.Process
    ready: dict[str, Any]
    log_file: Path

    @property
    def url(self) -> str:
        """The backend's base URL from the ready file."""
        return str(self.ready["backend_url"])

    def log_text(self) -> str:
        """Everything the backend wrote to stderr so far."""
        return _read(self.log_file)

    async def terminate(
        self, timeout: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM
    ) -> int:
        """Send ``sig`` (SIGTERM) and wait (bounded) for the exit code."""
        self.process.send_signal(sig)
        async with asyncio.timeout(timeout):
            return await self.process.wait()


def backend_env(**variables: str | None) -> dict[str, str]:
    """The current environment with the pipeline variables replaced."""
    env = {k: v for k, v in os.environ.items() if k not in variables}
    env.update({k: v for k, v in variables.items() if v is not None})
    return env


@asynccontextmanager
async def run_backend(
    workdir: Path, env: dict[str, str], *extra_args: str, log_level: str = "INFO"
) -> AsyncIterator[BackendProcess]:
    """Start the backend on a free port; kill it at the end if it still runs.

    Raises:
        AssertionError: it exited or did not write its ready file within the bound;
            the message holds its log.
    """
    ready_file = workdir / "backend-ready.json"
    log_file = workdir / "backend.log"
    with log_file.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recipe_pipeline",
            "--log-level",
            log_level,
            "backend",
            "--port",
            "0",
            "--ready-file",
            str(ready_file),
            *extra_args,
            cwd=workdir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        ready = await _wait_for_ready(process, ready_file, log_file)
        yield BackendProcess(process, ready, log_file)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_for_ready(
    process: asyncio.subprocess.Process, ready_file: Path, log_file: Path
) -> dict[str, Any]:
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not await asyncio.to_thread(ready_file.exists):
                if process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
    except TimeoutError:
        pass
    if not await asyncio.to_thread(ready_file.exists):
        log = await asyncio.to_thread(_read, log_file)
        raise AssertionError(f"backend did not become ready; its log:\n{log}")
    ready: dict[str, Any] = json.loads(await asyncio.to_thread(_read, ready_file))
    return ready


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


async def start_failure(
    workdir: Path, env: dict[str, str], port: int = 0
) -> tuple[int, str]:
    """Run the backend expecting it to fail at start: (exit code, its stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "backend",
        "--port",
        str(port),
        cwd=workdir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            _out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, err.decode("utf-8", errors="replace")
