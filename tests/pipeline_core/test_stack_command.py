"""``recipe-pipeline up`` as a user runs it: ready file, answering services, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- one stack per data dir and database; what up reports and hands out ----------


@dataclass
class RunningUp:
    """``recipe-pipeline up`` on its embedded broker, run from ``cwd`` with the
    relative data dir ``stack`` and the relative database ``favorites.db``."""

    process: subprocess.Popen[bytes]
    cwd: Path
    env: dict[str, str]
    ready: dict[str, Any]

    @property
    def data_dir(self) -> Path:
        return self.cwd / "stack"


def embedded_env() -> dict[str, str]:
    """This environment with a topic and group of the test's own, and no Kafka
    address, so that up starts its embedded broker."""
    env = {
        **os.environ,
        "FAVORITES_TOPIC": f"up-{uuid.uuid4().hex[:8]}",
        "CONSUMER_GROUP": f"up-{uuid.uuid4().hex[:8]}",
        "DATABASE_URL": "sqlite:///favorites.db",
    }
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "API_TOKEN"):
        env.pop(name, None)
    return env


def recipe_pipeline(*args: str) -> list[str]:
    return [sys.executable, "-m", "recipe_pipeline", *args]


def start_up(cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (cwd / "up.stderr").open("wb") as stderr:
        return subprocess.Popen(
            recipe_pipeline("up", "--data-dir", "stack", "--ready-file", "ready.json"),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_until_ready(process: subprocess.Popen[bytes], path: Path) -> dict[str, Any]:
    """The ready file's JSON once up wrote it (a bounded wait on the file)."""
    deadline = time.monotonic() + 240
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"up exited with {process.returncode} before ready")
        if time.monotonic() > deadline:
            raise AssertionError("up did not write its ready file within 240 s")
        time.sleep(0.1)
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def running_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    cwd = tmp_path_factory.mktemp("up-embedded")
    env = embedded_env()
    process = start_up(cwd, env)
    try:
        ready = wait_until_ready(process, cwd / "ready.json")
        yield RunningUp(process, cwd, env, ready)
    finally:
        end(process)


def files_of(data_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of the files a second stack used to damage."""
    names = [
        "kafka/server.properties",
        "kafka/log4j2.properties",
        "kafka/kraft/meta.properties",
        "run/api-token",
        "run/backend.ready.json",
        "run/consumer.ready.json",
    ]
    found = {}
    for name in names:
        path = data_dir / name
        found[name] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def test_a_second_up_on_the_same_data_dir_is_refused_and_changes_nothing(
    running_up: RunningUp,
) -> None:
    """A second up on a data dir in use exits 1 at once with one line naming the
    running stack's pid and --data-dir, and leaves the running stack's files as
    they were."""
    before = files_of(running_up.data_dir)
    (running_up.cwd / "ready.json").rename(running_up.cwd / "first-ready.json")

    second = subprocess.run(
        recipe_pipeline("up", "--data-dir", "stack", "--ready-file", "ready.json"),
        cwd=running_up.cwd,
        env=running_up.env,
        capture_output=True,
        timeout=60,
        check=False,
    )

    expected = (
        f"recipe-pipeline up: data dir {running_up.data_dir.resolve()} is in use by"
        f" another running stack (pid {running_up.process.pid}); pass another"
        " --data-dir"
    )
    assert second.returncode == 1
    assert second.stderr.decode().strip().splitlines()[-1] == expected
    assert files_of(running_up.data_dir) == before
    assert not (running_up.cwd / "ready.json").exists()
    assert running_up.process.poll() is None


def test_a_second_up_on_the_same_database_is_refused(running_up: RunningUp) -> None:
    """A second up with another data dir but the same SQLite DATABASE_URL exits 1
    with one line telling to set DATABASE_URL, and starts nothing in its data dir."""
    second = subprocess.run(
        recipe_pipeline("up", "--data-dir", "other"),
        cwd=running_up.cwd,
        env=running_up.env,
        capture_output=True,
        timeout=60,
        check=False,
    )

    line = second.stderr.decode().strip().splitlines()[-1]
    assert second.returncode == 1
    assert line.startswith(
        f"recipe-pipeline up: database {(running_up.cwd / 'favorites.db').resolve()}"
        f" is in use by another running stack (pid {running_up.process.pid})"
    )
    assert line.endswith("set DATABASE_URL to a database of this stack's own")
    assert sorted(p.name for p in (running_up.cwd / "other").iterdir()) == [
        "stack.lock"
    ]


def test_a_dashboard_on_a_data_dir_in_use_is_refused_before_it_opens(
    running_up: RunningUp,
) -> None:
    """dashboard --data-dir of a running stack exits 1 with the same one line as up,
    and writes no dashboard log there."""
    dashboard = subprocess.run(
        recipe_pipeline("dashboard", "--data-dir", "stack"),
        cwd=running_up.cwd,
        env=running_up.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert dashboard.returncode == 1
    assert dashboard.stderr.decode().strip().splitlines()[-1] == (
        f"recipe-pipeline dashboard: data dir {running_up.data_dir.resolve()} is in"
        f" use by another running stack (pid {running_up.process.pid}); pass another"
        " --data-dir"
    )
    assert not (running_up.data_dir / "run" / "dashboard.log").exists()


def test_up_ready_file_holds_absolute_paths(running_up: RunningUp) -> None:
    """Started with a relative data dir and database, up writes absolute paths, and
    the token file is the one the running stack holds."""
    token_file = Path(running_up.ready["api_token_file"])

    assert token_file.is_absolute()
    assert token_file == (running_up.data_dir / "run" / "api-token").resolve()
    assert token_file.read_text()
    assert running_up.ready["database_url"] == (
        f"sqlite:///{(running_up.cwd / 'favorites.db').resolve()}"
    )


def test_up_exits_with_one_line_when_its_embedded_broker_dies(tmp_path: Path) -> None:
    """SIGKILL of the embedded broker's Java process ends up with exit 1 and one
    line naming the broker's log; the backend and consumer are stopped."""
    process = start_up(tmp_path, embedded_env())
    try:
        wait_until_ready(process, tmp_path / "ready.json")
        children = psutil.Process(process.pid).children()
        [broker] = [c for c in children if "kafka.Kafka" in c.cmdline()]

        broker.kill()
        code = process.wait(90)
    finally:
        end(process)

    log = tmp_path.resolve() / "stack" / "kafka" / "logs" / "server.log"
    stderr = (tmp_path / "up.stderr").read_text().strip().splitlines()
    assert code == 1
    assert stderr[-1] == (
        f"recipe-pipeline up: the embedded Kafka broker exited; see {log}"
    )
    assert not [child for child in children if _running(child)]


def test_up_does_not_replay_the_logs_of_an_earlier_run(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Lines an earlier run left in run/*.log are not copied to stderr again."""
    run_dir = tmp_path / "stack" / "run"
    run_dir.mkdir(parents=True)
    for name in ("backend", "consumer"):
        (run_dir / f"{name}.log").write_text(f"{name}: a line of an earlier run\n")
    env = {**embedded_env(), "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    process = start_up(tmp_path, env)
    try:
        wait_until_ready(process, tmp_path / "ready.json")
    finally:
        end(process)

    stderr = (tmp_path / "up.stderr").read_text()
    assert process.returncode == 0
    assert "[backend]" in stderr
    assert "a line of an earlier run" not in stderr


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
