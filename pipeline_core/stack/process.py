"""One supervised child process of the stack: started, watched, stopped, killed.

A :class:`ComponentProcess` runs one command (normally ``python -m recipe_pipeline
<name> ...``) with ``--ready-file F`` appended, its stdout and stderr going to a log
file. It is *running* once the child wrote the ready file, and its last log lines
are kept in a bounded buffer for screens and error messages.

Children are started in their own session, so a Ctrl-C in the terminal reaches only
the supervisor, which then stops them in order. On Linux each child also asks the
kernel for SIGKILL when the thread that started it ends (``PR_SET_PDEATHSIG``), so no
child outlives a supervisor that was killed; start children from the event loop's
thread, never from a short-lived worker thread. SIGKILL, not SIGTERM: a child paused
with SIGSTOP (:meth:`ComponentProcess.pause`) would keep a SIGTERM pending for ever,
while SIGKILL ends a stopped process too. Nothing is lost by it: the pipeline is
exactly-once in effect (offsets are committed only after the database transaction
that applied them, and an event the broker did not acknowledge was never answered
with 202), so a child killed at any moment leaves no acknowledged favourite behind.

Each :class:`ComponentProcess` starts its log file afresh on its first start (a
restart appends), so its log and :meth:`ComponentProcess.poll_log` hold this run's
lines only; a stack's lock on its data dir keeps other runs off the file meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

#: How many log lines a component keeps in memory.
LOG_TAIL_LINES = 200
#: How much of a log file one poll reads at most (older bytes are skipped).
LOG_READ_CHUNK = 256 * 1024
#: How often a start or a stop looks at the child while it waits.
POLL_INTERVAL_S = 0.05

_PR_SET_PDEATHSIG = 1


class ComponentState(StrEnum):
    """Where a supervised child is in its life."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"


class ComponentError(RuntimeError):
    """A child did not start, or did not stop, as asked; the message says why."""


def component_argv(name: str, *extra: str) -> list[str]:
    """The command line that runs one ``recipe-pipeline`` subcommand in a child.

    Args:
        name: the subcommand, such as ``backend`` or ``consumer``.
        *extra: its arguments (``--ready-file`` is added by :class:`ComponentProcess`).
    """
    return [sys.executable, "-m", "recipe_pipeline", name, *extra]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ComponentProcess:
    """One child process with a ready file, a log file and a state.

    Args:
        name: the component's name, used in logs, file names and messages.
        argv: the command to run; ``--ready-file <path>`` is appended.
        env: the child's complete environment.
        run_dir: where the ready file and the log file (``<name>.log``) go.
        on_state: called with the component after every state change.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        run_dir: Path,
        on_state: Callable[[ComponentProcess], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.run_dir = run_dir
        self.ready_path = run_dir / f"{name}.ready.json"
        self.log_path = run_dir / f"{name}.log"
        self.state = ComponentState.NEW
        self.ready: dict[str, Any] = {}
        self.restarts = 0
        self.exit_code: int | None = None
        self._on_state = on_state
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._log_offset = 0
        self._partial = b""
        self._starts = 0
        self._stopping = False

    def __repr__(self) -> str:
        return f"<ComponentProcess {self.name} {self.state} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The child's pid while it exists, else ``None``."""
        return self._popen.pid if self._popen is not None else None

    @property
    def is_stopping(self) -> bool:
        """Whether :meth:`stop` is waiting for the child to exit."""
        return self._stopping

    @property
    def is_alive(self) -> bool:
        """Whether the child process exists and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    async def start(self, timeout: float) -> dict[str, Any]:
        """Start the child and wait until it wrote its ready file.

        Args:
            timeout: seconds to wait for the ready file.

        Returns:
            The ready file's JSON object (also kept in :attr:`ready`).

        Raises:
            ComponentError: it is already running, it exited first, the ready file
                is not a JSON object, or ``timeout`` passed; the child is stopped and
                the message ends with its last log lines.
        """
        if self.is_alive:
            raise ComponentError(
                f"{self.name} is already running (pid {self.pid}); stop it first"
            )
        self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready = self._read_ready()
            except ComponentError:
                await self.stop(timeout=5.0)
                self._set_state(ComponentState.FAILED)
                raise
            if ready is not None:
                self.ready = ready
                self._set_state(ComponentState.RUNNING)
                logger.info("component %s running, pid %s", self.name, self.pid)
                return ready
            if not self.is_alive:
                self._reap()
                self._set_state(ComponentState.FAILED)
                raise ComponentError(
                    f"{self.name} exited with code {self.exit_code} before it was"
                    f" ready{self._last_lines_text()}"
                )
            if time.monotonic() >= deadline:
                await self.stop(timeout=5.0)
                self._set_state(ComponentState.FAILED)
                raise ComponentError(
                    f"{self.name} was not ready within {timeout:g} s; it was"
                    f" stopped{self._last_lines_text()}"
                )
            await asyncio.sleep(POLL_INTERVAL_S)

    async def stop(self, timeout: float) -> None:
        """Stop the child: SIGTERM, then SIGKILL once ``timeout`` seconds passed.

        Stopping a child that is not running only records that it stopped.
        """
        popen = self._popen
        if popen is None:
            return
        self._stopping = True
        try:
            await self._terminate(popen, timeout)
        finally:
            self._stopping = False
        self._reap()
        if self.state in {
            ComponentState.STARTING,
            ComponentState.RUNNING,
            ComponentState.PAUSED,
        }:
            self._set_state(ComponentState.STOPPED)

    async def _terminate(self, popen: subprocess.Popen[bytes], timeout: float) -> None:
        if popen.poll() is None:
            logger.info("stopping component %s, pid %s", self.name, popen.pid)
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
                popen.send_signal(signal.SIGCONT)
            if not await self._wait_exit(timeout):
                logger.warning(
                    "component %s did not stop within %.1f s; killing pid %s",
                    self.name,
                    timeout,
                    popen.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                await self._wait_exit(timeout)

    async def kill(self, timeout: float = 5.0) -> None:
        """Kill the child with SIGKILL, as a crash would (no clean-up), and reap it.

        Raises:
            ComponentError: the child is not running, or it still exists after
                ``timeout`` seconds.
        """
        popen = self._popen
        if popen is None or popen.poll() is not None:
            raise ComponentError(f"{self.name} is not running; nothing to kill")
        logger.warning("killing component %s, pid %s (SIGKILL)", self.name, popen.pid)
        popen.kill()
        if not await self._wait_exit(timeout):
            raise ComponentError(
                f"{self.name} (pid {popen.pid}) still exists {timeout:g} s after"
                " SIGKILL; check it with ps"
            )
        self._reap()
        self._set_state(ComponentState.KILLED)

    def pause(self) -> None:
        """Freeze the child with SIGSTOP (it keeps its connections but does nothing).

        A paused Kafka consumer stops heartbeating, so its group rebalances it away
        after the session timeout; :meth:`resume` lets it rejoin.

        Raises:
            ComponentError: the child is not running.
        """
        popen = self._popen
        if self.state is not ComponentState.RUNNING or popen is None:
            raise ComponentError(f"{self.name} is not running; nothing to pause")
        popen.send_signal(signal.SIGSTOP)
        logger.info("paused component %s, pid %s (SIGSTOP)", self.name, popen.pid)
        self._set_state(ComponentState.PAUSED)

    def resume(self) -> None:
        """Let a paused child run again (SIGCONT).

        Raises:
            ComponentError: the child is not paused.
        """
        popen = self._popen
        if self.state is not ComponentState.PAUSED or popen is None:
            raise ComponentError(f"{self.name} is not paused; nothing to resume")
        popen.send_signal(signal.SIGCONT)
        logger.info("resumed component %s, pid %s (SIGCONT)", self.name, popen.pid)
        self._set_state(ComponentState.RUNNING)

    async def restart(self, timeout: float) -> dict[str, Any]:
        """Stop the child if it runs, then start it again and wait until it is ready.

        Args:
            timeout: seconds for the stop and, separately, for the start.
        """
        await self.stop(timeout)
        self.restarts += 1
        return await self.start(timeout)

    def check(self) -> ComponentState:
        """Notice a child that exited on its own; returns the current state."""
        alive_states = {ComponentState.RUNNING, ComponentState.PAUSED}
        if self.state in alive_states and not self._stopping and not self.is_alive:
            self._reap()
            logger.error(
                "component %s exited unexpectedly with code %s",
                self.name,
                self.exit_code,
            )
            self._set_state(ComponentState.FAILED)
        return self.state

    def poll_log(self) -> list[str]:
        """Read the lines the child logged since the last poll (non-blocking I/O).

        The lines also go into the bounded tail (:meth:`log_tail`). At most
        :data:`LOG_READ_CHUNK` bytes are read per call; older bytes are skipped.
        """
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._log_offset:
            self._log_offset, self._partial = 0, b""
        if size - self._log_offset > LOG_READ_CHUNK:
            self._log_offset, self._partial = size - LOG_READ_CHUNK, b""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            data = handle.read(size - self._log_offset)
        self._log_offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        lines = [raw.decode("utf-8", errors="replace").rstrip("\r") for raw in complete]
        self._tail.extend(lines)
        return lines

    def log_tail(self, count: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``count`` log lines read so far (see :meth:`poll_log`)."""
        self.poll_log()
        return list(self._tail)[-count:]

    def _spawn(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        self.ready = {}
        self.exit_code = None
        self._close_log()
        self._log_handle = self.log_path.open("ab" if self._starts else "wb")
        self._starts += 1
        header = f"--- {self.name} start #{self._starts} ---\n"
        self._log_handle.write(header.encode())
        self._log_handle.flush()
        argv = [*self.argv, "--ready-file", str(self.ready_path)]
        self._set_state(ComponentState.STARTING)
        try:
            self._popen = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self._set_state(ComponentState.FAILED)
            raise ComponentError(
                f"could not start {self.name} ({argv[0]}): {exc.strerror}"
            ) from exc
        logger.info("started component %s, pid %s", self.name, self._popen.pid)

    def _read_ready(self) -> dict[str, Any] | None:
        try:
            text = self.ready_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ComponentError(
                f"{self.name} wrote a ready file that is not JSON"
                f" ({self.ready_path}): {exc.msg}"
            ) from None
        if not isinstance(payload, dict):
            raise ComponentError(
                f"{self.name} wrote a ready file that is not a JSON object"
                f" ({self.ready_path})"
            )
        return payload

    async def _wait_exit(self, timeout: float) -> bool:
        popen = self._popen
        assert popen is not None
        deadline = time.monotonic() + timeout
        while popen.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL_S)
        return True

    def _reap(self) -> None:
        if self._popen is not None:
            code = self._popen.poll()
            if code is not None:
                self.exit_code = code
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _last_lines_text(self, count: int = 15) -> str:
        lines = self.log_tail(count)
        if not lines:
            return f" (no output; log: {self.log_path})"
        body = "\n  ".join(lines)
        return f"; last log lines ({self.log_path}):\n  {body}"

    def _set_state(self, state: ComponentState) -> None:
        self.state = state
        if self._on_state is not None:
            try:
                self._on_state(self)
            except Exception:
                logger.exception("state callback for %s failed", self.name)


def environment_for(base: Mapping[str, str], **values: str | None) -> dict[str, str]:
    """A child's environment: ``base`` with ``values`` set (``None`` removes one)."""
    env = dict(base)
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
