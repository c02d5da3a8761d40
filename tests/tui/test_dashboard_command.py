"""``recipe-pipeline dashboard`` as a process in a terminal, and its configuration."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from pipeline_core.commands import CommandFailed
from pipeline_core.settings import load_settings
from tui.command import dashboard_config


def test_without_attach_the_dashboard_starts_a_stack(tmp_path: Path) -> None:
    """The default configuration starts a stack from the settings."""
    settings = load_settings(favorites_topic="t9", consumer_group="g9")

    config = dashboard_config(settings, False, None, tmp_path)

    assert config.stack is not None
    assert config.attach is None
    assert (config.topic, config.group) == ("t9", "g9")
    assert config.stack.data_dir == tmp_path


def test_attach_reads_addresses_and_token_from_a_ready_file(tmp_path: Path) -> None:
    """--attach --ready-file takes the addresses of up and its token file."""
    token_file = tmp_path / "api-token"
    token_file.write_text("a-token-of-thirty-two-characters")
    ready = tmp_path / "ready.json"
    ready.write_text(
        json.dumps(
            {
                "kafka_bootstrap": "127.0.0.1:19092",
                "backend_url": "http://127.0.0.1:18000",
                "database_url": "sqlite:////tmp/x.db",
                "api_token_file": str(token_file),
            }
        )
    )

    config = dashboard_config(load_settings(api_token=None), True, ready, tmp_path)

    assert config.attach is not None
    assert config.attach.backend_url == "http://127.0.0.1:18000"
    assert config.api_token is not None
    assert config.api_token.get_secret_value() == "a-token-of-thirty-two-characters"


def test_attach_without_ready_file_uses_the_settings(tmp_path: Path) -> None:
    """--attach alone takes the addresses from the environment's settings."""
    settings = load_settings(
        kafka_bootstrap_servers="127.0.0.1:29092", backend_url="http://127.0.0.1:28000"
    )

    config = dashboard_config(settings, True, None, tmp_path)

    assert config.attach is not None
    assert config.attach.kafka_bootstrap == "127.0.0.1:29092"
    assert config.attach.backend_url == "http://127.0.0.1:28000"


def test_a_ready_file_without_attach_is_refused(tmp_path: Path) -> None:
    """--ready-file alone is a mistake the message explains."""
    with pytest.raises(CommandFailed, match="add --attach"):
        dashboard_config(load_settings(), False, tmp_path / "r.json", tmp_path)


@pytest.mark.parametrize("content", ["not json", '{"kafka_bootstrap": "x"}', "[]"])
def test_an_unusable_ready_file_is_refused(tmp_path: Path, content: str) -> None:
    """A ready file that is not up's is refused, naming the file."""
    ready = tmp_path / "ready.json"
    ready.write_text(content)

    with pytest.raises(CommandFailed, match="ready file"):
        dashboard_config(load_settings(), True, ready, tmp_path)


class TerminalProcess:
    """``recipe-pipeline dashboard`` running in a pseudo-terminal of its own."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self.master = master
        self.screen_bytes = 0

    def drain(self) -> None:
        try:
            self.screen_bytes += len(os.read(self.master, 65536))
        except OSError:
            asyncio.get_running_loop().remove_reader(self.master)

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


@pytest.fixture
async def dashboard_process(
    tmp_path: Path, kafka_bootstrap: str
) -> AsyncIterator[TerminalProcess]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FAVORITES_TOPIC": f"dash-cmd-{suffix}",
        "CONSUMER_GROUP": f"dash-cmd-{suffix}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'favorites.db'}",
        "TERM": "xterm-256color",
        "COLUMNS": "160",
        "LINES": "48",
    }
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "dashboard",
        "--data-dir",
        str(tmp_path / "stack"),
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    terminal = TerminalProcess(process, master)
    asyncio.get_running_loop().add_reader(master, terminal.drain)
    try:
        yield terminal
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        asyncio.get_running_loop().remove_reader(master)
        os.close(master)


async def wait_for_components(terminal: TerminalProcess) -> list[psutil.Process]:
    """Wait until the dashboard runs its backend and consumer children."""
    deadline = time.monotonic() + 120
    while True:
        names = [" ".join(child.cmdline()) for child in terminal.children()]
        running = [n for n in names if "recipe_pipeline backend" in n] and [
            n for n in names if "recipe_pipeline consumer" in n
        ]
        if running:
            return terminal.children()
        if terminal.process.returncode is not None:
            raise AssertionError(f"dashboard exited with {terminal.process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("the dashboard did not start its stack in 120 s")
        await asyncio.sleep(0.2)


async def gone(processes: list[psutil.Process], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in processes):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
async def test_sigterm_stops_the_dashboard_and_every_child(
    dashboard_process: TerminalProcess,
) -> None:
    """SIGTERM ends the dashboard with 0 and no backend or consumer remains."""
    children = await wait_for_components(dashboard_process)

    dashboard_process.process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(dashboard_process.process.wait(), 60)

    assert code == 0
    assert await gone(children)
    assert dashboard_process.screen_bytes > 0


@pytest.mark.slow
async def test_a_killed_dashboard_leaves_no_child(
    dashboard_process: TerminalProcess,
) -> None:
    """Even SIGKILL of the dashboard takes its children down (parent-death signal)."""
    children = await wait_for_components(dashboard_process)

    dashboard_process.process.kill()
    await asyncio.wait_for(dashboard_process.process.wait(), 30)

    assert await gone(children)
