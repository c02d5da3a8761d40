"""The locks that keep one running stack per data dir and per SQLite database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pipeline_core.stack import Stack, StackConfig, StackError
from pipeline_core.stack.lock import LockHeld, RunLock
from pipeline_core.stack.stack import check_not_in_use


def test_a_held_lock_is_refused_naming_the_holders_pid(tmp_path: Path) -> None:
    """A second descriptor cannot take a held lock; the refusal names the pid."""
    first, second = RunLock(tmp_path / "x.lock"), RunLock(tmp_path / "x.lock")
    first.acquire()
    try:
        with pytest.raises(LockHeld) as refused:
            second.acquire()
    finally:
        first.release()

    assert refused.value.holder_pid == os.getpid()
    assert not second.held


def test_a_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    """release() lets the next taker in."""
    first, second = RunLock(tmp_path / "x.lock"), RunLock(tmp_path / "x.lock")
    first.acquire()
    first.release()

    second.acquire()
    second.release()

    assert not first.held


def test_a_stack_refused_its_database_keeps_no_lock_on_its_data_dir(
    tmp_path: Path,
) -> None:
    """When the database is in use, the data dir lock taken first is let go."""
    database = tmp_path / "favorites.db"
    other = RunLock(tmp_path / "favorites.db.stack-lock")
    other.acquire()
    config = StackConfig(
        data_dir=tmp_path / "stack", database_url=f"sqlite:///{database}"
    )
    try:
        with pytest.raises(StackError, match="set DATABASE_URL"):
            check_not_in_use(config)
    finally:
        other.release()

    check_not_in_use(config)


def test_other_databases_than_sqlite_take_no_database_lock(tmp_path: Path) -> None:
    """A PostgreSQL URL locks the data dir only."""
    stack = Stack(
        StackConfig(data_dir=tmp_path, database_url="postgresql://127.0.0.1/x")
    )

    locks = stack.take_locks()
    for lock in locks:
        lock.release()

    assert [lock.path for lock in locks] == [tmp_path.resolve() / "stack.lock"]


@pytest.mark.slow
async def test_a_stack_that_stopped_lets_the_next_one_in(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """After a stack stopped (here: after its backend failed to start), a new
    stack on the same data dir and database is not refused."""
    config = StackConfig(
        data_dir=tmp_path,
        topic=f"lock-{uuid.uuid4().hex[:8]}",
        bootstrap=kafka_bootstrap,
        component_timeout=0.01,
    )
    with pytest.raises(StackError, match="backend"):
        await Stack(config).start()

    check_not_in_use(config)
