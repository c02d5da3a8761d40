"""FavoriteStore against a real SQLite file: idempotent, ordered, retried."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlmodel import Session

from consumer.store import (
    LOOKUP_CHUNK,
    DatabaseUnavailable,
    FavoriteStore,
    StoredRecord,
)
from pipeline_core.events import EventType, FavoriteEvent
from pipeline_core.storage import AppliedEvent, Favorite, create_schema, make_engine

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'favorites.db'}")
    create_schema(engine)
    return engine


def impatient(tmp_path: Path) -> Engine:
    """An engine on the same file whose connections wait only 50 ms on a lock."""
    engine = make_engine(f"sqlite:///{tmp_path / 'favorites.db'}")

    def short_busy_timeout(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA busy_timeout=50")

    event.listen(engine, "connect", short_busy_timeout)
    return engine


def record(
    kind: EventType,
    user: str = "1001",
    recipe: str = "7",
    *,
    at: datetime = T0,
    offset: int = 0,
    event_id: uuid.UUID | None = None,
) -> StoredRecord:
    event = FavoriteEvent(
        event_id=event_id or uuid.uuid4(),
        type=kind,
        user_id=user,
        user_name="ana",
        recipe_id=recipe,
        occurred_at=at,
        trace_id=uuid.uuid4().hex,
    )
    return StoredRecord("favs", 0, offset, event)


def favorites(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        rows = session.exec(select(Favorite.user_id, Favorite.recipe_id)).all()  # type: ignore[call-overload]
    return sorted((row[0], row[1]) for row in rows)


def test_redelivered_batch_is_counted_as_duplicates_and_changes_nothing(
    engine: Engine,
) -> None:
    """Applying the same records twice stores one row and counts duplicates."""
    store = FavoriteStore(engine)
    batch = [record(EventType.ADDED, recipe="7"), record(EventType.ADDED, recipe="8")]
    first = store.apply_batch(batch)
    second = store.apply_batch(batch)
    assert (first.applied, first.duplicates) == (2, 0)
    assert (second.applied, second.duplicates) == (0, 2)
    assert favorites(engine) == [("1001", "7"), ("1001", "8")]


def test_repeat_of_an_event_inside_one_batch_is_a_duplicate(engine: Engine) -> None:
    """The same event id twice in one batch is applied once."""
    add = record(EventType.ADDED)
    result = FavoriteStore(engine).apply_batch([add, add])
    assert (result.applied, result.duplicates) == (1, 1)


def test_removal_deletes_the_favourite(engine: Engine) -> None:
    """favorite.removed after favorite.added leaves no row."""
    store = FavoriteStore(engine)
    store.apply_batch([record(EventType.ADDED)])
    store.apply_batch([record(EventType.REMOVED, at=T0 + timedelta(seconds=1))])
    assert favorites(engine) == []


def test_removing_an_absent_favourite_is_a_no_op(engine: Engine) -> None:
    """A removal of something never added is applied and changes nothing."""
    result = FavoriteStore(engine).apply_batch([record(EventType.REMOVED)])
    assert result.applied == 1
    assert favorites(engine) == []


def test_last_event_of_a_pair_in_a_batch_wins(engine: Engine) -> None:
    """add, remove, add of one pair in one batch ends stored."""
    batch = [
        record(EventType.ADDED, at=T0),
        record(EventType.REMOVED, at=T0 + timedelta(seconds=1)),
        record(EventType.ADDED, at=T0 + timedelta(seconds=2)),
    ]
    FavoriteStore(engine).apply_batch(batch)
    assert favorites(engine) == [("1001", "7")]


def test_stale_removal_does_not_delete_a_newer_add(engine: Engine) -> None:
    """A removal older than the stored add leaves the favourite in place."""
    store = FavoriteStore(engine)
    store.apply_batch([record(EventType.ADDED, at=T0 + timedelta(minutes=5))])
    store.apply_batch([record(EventType.REMOVED, at=T0)])
    assert favorites(engine) == [("1001", "7")]


def test_stale_add_does_not_overwrite_a_newer_add(engine: Engine) -> None:
    """An add older than the stored one keeps the newer row's event id."""
    store = FavoriteStore(engine)
    newer = record(EventType.ADDED, at=T0 + timedelta(minutes=5))
    store.apply_batch([newer])
    store.apply_batch([record(EventType.ADDED, at=T0)])
    with Session(engine) as session:
        stored = session.exec(select(Favorite.event_id)).one()  # type: ignore[call-overload]
    assert stored[0] == str(newer.event.event_id)


def test_applied_events_past_retention_are_pruned(engine: Engine) -> None:
    """prune() deletes applied-event ids older than the retention only."""
    store = FavoriteStore(engine, retention=timedelta(days=1))
    store.apply_batch([record(EventType.ADDED)])
    assert store.prune(now=datetime.now(UTC)) == 0
    assert store.prune(now=datetime.now(UTC) + timedelta(days=2)) == 1
    with Session(engine) as session:
        left = session.exec(select(func.count()).select_from(AppliedEvent)).one()  # type: ignore[call-overload]
    assert left[0] == 0


def test_locked_database_is_retried_until_the_lock_goes(
    engine: Engine, tmp_path: Path
) -> None:
    """A write lock held by another connection delays the batch; nothing is lost."""
    holder = sqlite3.connect(tmp_path / "favorites.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_after_first_retry(_seconds: float) -> None:
        holder.execute("COMMIT")
        released.set()

    store = FavoriteStore(impatient(tmp_path), sleep=release_after_first_retry)
    result = store.apply_batch([record(EventType.ADDED)])
    holder.close()
    assert released.is_set()
    assert result.applied == 1


def test_database_locked_through_every_attempt_raises(
    engine: Engine, tmp_path: Path
) -> None:
    """When the lock never goes, DatabaseUnavailable is raised and nothing applied."""
    holder = sqlite3.connect(tmp_path / "favorites.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    store = FavoriteStore(impatient(tmp_path), attempts=2, sleep=lambda _s: None)
    try:
        with pytest.raises(DatabaseUnavailable):
            store.apply_batch([record(EventType.ADDED)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert favorites(engine) == []


def test_redelivery_spanning_several_lookup_chunks_is_all_duplicates(
    engine: Engine,
) -> None:
    """A redelivered batch longer than one id lookup (a part chunk at the end) is
    counted as duplicates in full, and new events mixed into it are applied."""
    store = FavoriteStore(engine)
    old = [record(EventType.ADDED, recipe=str(n)) for n in range(LOOKUP_CHUNK * 2 + 7)]
    store.apply_batch(old)
    new = [record(EventType.ADDED, user="2002", recipe=str(n)) for n in range(3)]

    result = store.apply_batch([*old[:LOOKUP_CHUNK], *new, *old[LOOKUP_CHUNK:]])

    assert (result.applied, result.duplicates) == (3, len(old))
    assert len(favorites(engine)) == len(old) + 3


@pytest.mark.parametrize(
    "occurred_at",
    [
        T0,
        datetime(2026, 3, 1, 9, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 11, 30, 5, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
    ids=["whole-second", "microseconds", "other-zone"],
)
def test_stored_times_read_back_as_the_same_utc_moment(
    engine: Engine, occurred_at: datetime
) -> None:
    """occurred_at written by the store reads back through SQLModel as the same
    moment in UTC, whatever its zone and even with zero microseconds."""
    added = record(EventType.ADDED, at=occurred_at)
    FavoriteStore(engine).apply_batch([added])

    with Session(engine) as session:
        stored = session.exec(select(Favorite.occurred_at)).one()  # type: ignore[call-overload]

    assert stored[0].replace(tzinfo=UTC) == occurred_at
