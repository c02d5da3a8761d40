"""The supervised child process: start, ready file, stop, kill, restart, logs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline_core.stack.process import (
    LOG_TAIL_LINES,
    ComponentError,
    ComponentProcess,
    ComponentState,
    component_argv,
)

CHILD = Path(__file__).with_name("stack_child.py")
ORPHAN_PARENT = Path(__file__).with_name("orphan_parent.py")


def make_child(tmp_path: Path, mode: str) -> ComponentProcess:
    return ComponentProcess(
        "child",
        [sys.executable, str(CHILD), mode],
        env=dict(os.environ),
        run_dir=tmp_path / "run",
    )


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def running_child(tmp_path: Path) -> object:
    component = make_child(tmp_path, "ready")
    await component.start(timeout=30)
    yield component
    await component.stop(timeout=10)


def test_component_argv_runs_the_subcommand_with_this_python() -> None:
    """The default command runs ``python -m recipe_pipeline <name>``."""
    assert component_argv("backend", "--port", "0") == [
        sys.executable,
        "-m",
        "recipe_pipeline",
        "backend",
        "--port",
        "0",
    ]


async def test_start_returns_the_ready_file_once_written(tmp_path: Path) -> None:
    """start() waits for the ready file and returns its JSON; the state is running."""
    component = make_child(tmp_path, "ready")
    try:
        ready = await component.start(timeout=30)

        assert ready == {"pid": component.pid, "answer": 42}
        assert component.state is ComponentState.RUNNING
        assert component.is_alive
    finally:
        await component.stop(timeout=10)


async def test_stop_terminates_the_child_cleanly(
    running_child: ComponentProcess,
) -> None:
    """stop() sends SIGTERM; a child that handles it exits 0 and is stopped."""
    await running_child.stop(timeout=10)

    assert running_child.state is ComponentState.STOPPED
    assert running_child.exit_code == 0
    assert not running_child.is_alive


async def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    """stop() falls back to SIGKILL when the child outlives its timeout."""
    component = make_child(tmp_path, "stubborn")
    await component.start(timeout=30)

    await component.stop(timeout=0.5)

    assert component.exit_code == -signal.SIGKILL
    assert component.state is ComponentState.STOPPED


async def test_start_reports_a_child_that_exits_first_with_its_log(
    tmp_path: Path,
) -> None:
    """A child that dies before it is ready fails start() with its last log lines."""
    component = make_child(tmp_path, "crash")

    with pytest.raises(ComponentError, match="exited with code 3") as caught:
        await component.start(timeout=30)

    assert "cannot bind the port" in str(caught.value)
    assert component.state is ComponentState.FAILED


async def test_start_gives_up_after_its_timeout_and_stops_the_child(
    tmp_path: Path,
) -> None:
    """A child that never writes its ready file is stopped when start() times out."""
    component = make_child(tmp_path, "silent")

    with pytest.raises(ComponentError, match="not ready within"):
        await component.start(timeout=0.5)

    assert not component.is_alive
    assert component.state is ComponentState.FAILED


async def test_start_rejects_a_ready_file_that_is_not_an_object(
    tmp_path: Path,
) -> None:
    """A ready file that is not a JSON object is an error, and the child is stopped."""
    component = make_child(tmp_path, "bad-ready")

    with pytest.raises(ComponentError, match="not a JSON object"):
        await component.start(timeout=30)

    assert not component.is_alive


async def test_start_twice_is_refused(running_child: ComponentProcess) -> None:
    """start() on a running child names the misuse instead of starting a second."""
    with pytest.raises(ComponentError, match="already running"):
        await running_child.start(timeout=5)


async def test_kill_ends_the_child_with_sigkill(
    running_child: ComponentProcess,
) -> None:
    """kill() ends the child at once, like a crash, and marks it killed."""
    pid = running_child.pid

    await running_child.kill()

    assert running_child.state is ComponentState.KILLED
    assert running_child.exit_code == -signal.SIGKILL
    assert pid is not None
    assert not psutil.pid_exists(pid)


async def test_kill_of_a_stopped_child_is_refused(tmp_path: Path) -> None:
    """kill() on a child that does not run says there is nothing to kill."""
    component = make_child(tmp_path, "ready")

    with pytest.raises(ComponentError, match="nothing to kill"):
        await component.kill()


async def test_restart_runs_a_new_child_and_counts_it(
    running_child: ComponentProcess,
) -> None:
    """restart() replaces the child with a new process and counts the restart."""
    old_pid = running_child.pid

    ready = await running_child.restart(timeout=30)

    assert running_child.pid != old_pid
    assert ready["pid"] == running_child.pid
    assert running_child.restarts == 1
    assert running_child.state is ComponentState.RUNNING


async def test_check_notices_a_child_that_died_on_its_own(
    running_child: ComponentProcess,
) -> None:
    """check() turns a running child that exited behind our back into failed."""
    assert running_child.pid is not None
    os.kill(running_child.pid, signal.SIGKILL)

    await wait_for(lambda: running_child.check() is ComponentState.FAILED)

    assert running_child.exit_code == -signal.SIGKILL


async def test_log_tail_keeps_only_the_last_lines(tmp_path: Path) -> None:
    """The in-memory log tail is bounded and holds the newest lines."""
    component = make_child(tmp_path, "chatty")
    try:
        await component.start(timeout=30)

        tail = component.log_tail()

        assert len(tail) == LOG_TAIL_LINES
        assert tail[-1] == "child: ready"
        assert tail[-2] == "line 999"
    finally:
        await component.stop(timeout=10)


async def test_poll_log_returns_each_line_once(running_child: ComponentProcess) -> None:
    """poll_log() hands out only the lines logged since the previous poll."""
    first = running_child.poll_log()
    await running_child.stop(timeout=10)

    second = running_child.poll_log()

    assert "child: ready" in first
    assert second == ["child: stopping"]


async def test_state_callback_sees_every_change(tmp_path: Path) -> None:
    """on_state is called with each state the child goes through."""
    seen: list[ComponentState] = []
    component = ComponentProcess(
        "child",
        [sys.executable, str(CHILD), "ready"],
        env=dict(os.environ),
        run_dir=tmp_path,
        on_state=lambda c: seen.append(c.state),
    )

    await component.start(timeout=30)
    await component.stop(timeout=10)

    assert seen == [
        ComponentState.STARTING,
        ComponentState.RUNNING,
        ComponentState.STOPPED,
    ]


async def test_a_new_component_does_not_replay_an_earlier_runs_log(
    tmp_path: Path,
) -> None:
    """A log file left by an earlier run is not handed out as this run's lines."""
    component = make_child(tmp_path, "ready")
    component.log_path.parent.mkdir(parents=True)
    component.log_path.write_text("child: a line of an earlier run\n")
    try:
        await component.start(timeout=30)

        lines = component.poll_log()
    finally:
        await component.stop(timeout=10)

    assert "child: ready" in lines
    assert "child: a line of an earlier run" not in lines


async def test_a_restart_keeps_the_lines_of_the_child_before_it(
    running_child: ComponentProcess,
) -> None:
    """Within one run, a restart appends: the first child's lines stay readable."""
    await running_child.restart(timeout=30)

    lines = running_child.poll_log()

    assert "child: stopping" in lines
    assert lines.count("child: ready") == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG is Linux")
@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
async def test_child_does_not_outlive_a_killed_supervisor(
    tmp_path: Path, paused: bool
) -> None:
    """When the supervising process is SIGKILLed, its child ends too, also while it
    is paused (SIGSTOP)."""
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ORPHAN_PARENT),
        str(tmp_path),
        *(["--pause"] if paused else []),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    child_pid: int | None = None
    try:
        assert parent.stdout is not None
        assert parent.stderr is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 30)
        if not line:
            errors = await asyncio.wait_for(parent.stderr.read(), 10)
            raise AssertionError(f"the supervisor ended early: {errors.decode()}")
        child_pid = int(line)
        assert _alive(child_pid)
        if paused:
            await wait_for(lambda: _status(child_pid) == psutil.STATUS_STOPPED)

        parent.kill()
        await asyncio.wait_for(parent.wait(), 10)

        await wait_for(lambda: not _alive(child_pid))
    finally:
        if parent.returncode is None:
            parent.kill()
            await asyncio.wait_for(parent.wait(), 10)
        if child_pid is not None and _alive(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def _status(pid: int) -> str | None:
    try:
        return str(psutil.Process(pid).status())
    except psutil.NoSuchProcess:
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_pause_freezes_the_child_and_resume_thaws_it(
    running_child: ComponentProcess,
) -> None:
    """pause() stops the process (SIGSTOP); resume() lets it run again."""
    process = psutil.Process(running_child.pid)

    running_child.pause()
    await wait_for(lambda: process.status() == psutil.STATUS_STOPPED)
    assert running_child.state is ComponentState.PAUSED

    running_child.resume()
    await wait_for(lambda: process.status() != psutil.STATUS_STOPPED)
    assert running_child.state is ComponentState.RUNNING


async def test_stop_ends_a_paused_child_cleanly(
    running_child: ComponentProcess,
) -> None:
    """A paused child still stops on SIGTERM, with exit code 0."""
    running_child.pause()

    await running_child.stop(timeout=10)

    assert running_child.exit_code == 0
    assert running_child.state is ComponentState.STOPPED


async def test_a_child_exiting_during_stop_is_not_reported_as_failed(
    tmp_path: Path,
) -> None:
    """check() while stop() waits for the child does not call its exit a failure."""
    component = make_child(tmp_path, "stubborn")
    await component.start(timeout=30)
    stopping = asyncio.create_task(component.stop(timeout=30))
    await wait_for(lambda: component.is_stopping)
    assert component.pid is not None
    os.kill(component.pid, signal.SIGKILL)
    await wait_for(lambda: not component.is_alive)

    state_during_stop = component.check()
    await stopping

    assert state_during_stop is ComponentState.RUNNING
    assert component.state is ComponentState.STOPPED
