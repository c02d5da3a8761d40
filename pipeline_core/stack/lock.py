"""Exclusive, non-blocking file locks that keep two stacks off the same files.

A :class:`RunLock` is an ``fcntl.flock`` on one file, held by an open descriptor
for as long as a stack runs; the kernel drops it when the process ends, however it
ends, so a crashed stack never leaves a stale lock behind. The holder writes its
pid into the file so that a refused stack can say who holds it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class LockHeld(RuntimeError):
    """Another open descriptor (another process, as a rule) holds the lock.

    Attributes:
        path: the lock file.
        holder_pid: the pid the holder wrote, or ``None`` when it is unknown.
    """

    def __init__(self, path: Path, holder_pid: int | None) -> None:
        super().__init__(f"{path} is locked by pid {holder_pid or 'unknown'}")
        self.path = path
        self.holder_pid = holder_pid


class RunLock:
    """An exclusive lock on ``path``, taken at once or not at all.

    Args:
        path: the lock file; it and its folder are created when missing. The file
            is left in place on release (it then holds no lock).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock without waiting, and write this process's pid into it.

        Raises:
            LockHeld: someone else holds it; nothing was changed.
            RuntimeError: this object holds it already (acquired twice?).
        """
        if self._descriptor is not None:
            raise RuntimeError(f"{self.path} is already locked by us; acquired twice?")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            raise LockHeld(self.path, holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor
        logger.debug("locked %s", self.path)

    def release(self) -> None:
        """Let the lock go (safe to call when it is not held)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        os.ftruncate(descriptor, 0)
        os.close(descriptor)
        logger.debug("unlocked %s", self.path)


def _read_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None
