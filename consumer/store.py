"""Applying a batch of favourite events to the database, once each, in one transaction.

:meth:`FavoriteStore.apply_batch` is synchronous and meant to run in a worker thread
(the consumer calls it with :func:`asyncio.to_thread`). One call is one transaction:

1. the batch's event ids are looked up in ``appliedevent``; those found, and repeats
   inside the batch, are duplicates and change nothing;
2. the new events are recorded in ``appliedevent``;
3. per (user, recipe) only the batch's last new event counts (records of one user
   arrive in partition order): ``favorite.added`` upserts the row,
   ``favorite.removed`` deletes it (deleting an absent row is a no-op).

Out-of-order guard: an upsert never overwrites a row whose ``occurred_at`` is newer,
and a removal never deletes a row added after it. Applied-event rows are pruned
after ``retention`` (default 30 days): Kafka only redelivers records after the last
committed offset, so that is safe as long as the retention exceeds the broker's
offset and topic retention (7 days by default). Past it, the guard above is what
keeps an old add from overwriting a newer one; an old add whose removal was already
applied would come back (the limit this retention protects against).

Statements are batched (``executemany`` of one INSERT ... ON CONFLICT), never one
round trip per event. The same code runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, and_, bindparam, column, delete, select, table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.expression import TableClause

from pipeline_core.events import EventType, FavoriteEvent
from pipeline_core.storage import AppliedEvent, Favorite, utc_now

logger = logging.getLogger(__name__)

#: Ids looked up per SELECT ... IN (...): well under SQLite's bound-parameter limit.
LOOKUP_CHUNK = 500
DEFAULT_RETENTION = timedelta(days=30)


@dataclass(frozen=True)
class StoredRecord:
    """A decoded event and where it came from on the topic."""

    topic: str
    partition: int
    offset: int
    event: FavoriteEvent


@dataclass(frozen=True)
class BatchResult:
    """What one applied batch did."""

    applied: int
    duplicates: int
    upserted: int
    removed: int


class DatabaseUnavailable(RuntimeError):
    """The database stayed unavailable or locked through every retry."""


class FavoriteStore:
    """Applies event batches to the favourites tables of ``engine``.

    Args:
        engine: the engine from :func:`pipeline_core.storage.make_engine`; the
            tables must exist (:func:`pipeline_core.storage.create_schema`).
        retention: how long applied-event ids are kept for deduplication.
        attempts: tries per batch when the database is unavailable or locked.
        backoff_s: the first wait between tries; it doubles, up to 5 s.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        attempts: int = 6,
        backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._retention = retention
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._favorites = _untyped(Favorite.__table__)  # type: ignore[attr-defined]
        self._applied = _untyped(AppliedEvent.__table__)  # type: ignore[attr-defined]
        self._dialect = engine.dialect.name
        self._timestamp: Callable[[datetime], Any] = (
            _sqlite_timestamp if self._dialect == "sqlite" else _as_utc
        )
        self._record_applied = _DriverStatement(self._applied.insert(), engine)
        self._upsert_favorite = _DriverStatement(self._upsert(), engine)
        self._remove_favorite = _DriverStatement(self._removal(), engine)

    def apply_batch(self, records: Sequence[StoredRecord]) -> BatchResult:
        """Apply ``records`` (in topic order) in one transaction, retrying if locked.

        Raises:
            DatabaseUnavailable: every attempt failed with an operational error;
                nothing of the batch was applied.
        """
        if not records:
            return BatchResult(0, 0, 0, 0)
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                with self._engine.begin() as conn:
                    return self._apply(conn, records)
            except (OperationalError, DBAPIError) as exc:
                if not _is_transient(exc) or attempt == self._attempts:
                    raise DatabaseUnavailable(
                        f"could not apply a batch of {len(records)} events after "
                        f"{attempt} attempt(s): {exc.orig}; check DATABASE_URL and "
                        "that the database is reachable and writable"
                    ) from exc
                logger.warning(
                    "database busy or unavailable (attempt %d of %d): %s; "
                    "retrying in %.1f s",
                    attempt,
                    self._attempts,
                    exc.orig,
                    delay,
                )
                self._sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def prune(self, now: datetime | None = None) -> int:
        """Delete applied-event rows older than the retention; return how many."""
        cutoff = self._timestamp((now or utc_now()) - self._retention)
        with self._engine.begin() as conn:
            result = conn.execute(
                delete(self._applied).where(self._applied.c.applied_at < cutoff)
            )
        return int(result.rowcount or 0)

    def _apply(self, conn: Any, records: Sequence[StoredRecord]) -> BatchResult:
        ids = [str(record.event.event_id) for record in records]
        seen = self._already_applied(conn, ids)

        fresh: list[StoredRecord] = []
        for record, event_id in zip(records, ids, strict=True):
            if event_id in seen:
                continue
            seen.add(event_id)
            fresh.append(record)
        if not fresh:
            return BatchResult(0, len(records), 0, 0)

        now = self._timestamp(utc_now())
        self._record_applied.run(conn, [_applied_row(r, now) for r in fresh])

        latest: dict[tuple[str, str], FavoriteEvent] = {}
        for record in fresh:
            event = record.event
            latest[(event.user_id, event.recipe_id)] = event
        adds = [e for e in latest.values() if e.type is EventType.ADDED]
        removes = [e for e in latest.values() if e.type is EventType.REMOVED]
        if adds:
            rows = [_favorite_row(e, now, self._timestamp) for e in adds]
            self._upsert_favorite.run(conn, rows)
        if removes:
            rows = [_removal_row(e, self._timestamp) for e in removes]
            self._remove_favorite.run(conn, rows)
        return BatchResult(
            len(fresh), len(records) - len(fresh), len(adds), len(removes)
        )

    def _already_applied(self, conn: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        column = self._applied.c.event_id
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            found.update(
                conn.execute(select(column).where(column.in_(chunk))).scalars()
            )
        return found

    def _upsert(self) -> Any:
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        statement = insert(self._favorites)
        newer = statement.excluded
        updated = {
            name: newer[name]
            for name in (
                "user_name",
                "guild_id",
                "source",
                "event_id",
                "trace_id",
                "occurred_at",
                "stored_at",
            )
        }
        return statement.on_conflict_do_update(
            index_elements=["user_id", "recipe_id"],
            set_=updated,
            where=self._favorites.c.occurred_at <= newer.occurred_at,
        )

    def _removal(self) -> Any:
        table = self._favorites
        return delete(table).where(
            and_(
                table.c.user_id == bindparam("b_user_id"),
                table.c.recipe_id == bindparam("b_recipe_id"),
                table.c.occurred_at <= bindparam("b_occurred_at"),
            )
        )


class _DriverStatement:
    """A statement compiled once for the engine's dialect, run as one executemany.

    Rows go to the driver's ``executemany`` as they are, skipping SQLAlchemy's
    per-row parameter processing (the batch's main cost otherwise); the rows hold
    driver-ready values (see :func:`_untyped`).
    """

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._names: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional else None
        )

    def run(self, conn: Any, rows: Sequence[dict[str, Any]]) -> None:
        if self._names is None:
            conn.exec_driver_sql(self._sql, list(rows))
            return
        names = self._names
        conn.exec_driver_sql(self._sql, [tuple(row[n] for n in names) for row in rows])


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and any(
        marker in text
        for marker in ("locked", "busy", "could not connect", "connection", "timeout")
    )


def _untyped(typed: Table) -> TableClause:
    """The same table without column types, so rows skip per-value bind processing.

    Values are passed ready for the driver: text, integers, and timestamps made by
    :func:`_sqlite_timestamp` (SQLAlchemy's own SQLite format) or :func:`_as_utc`.
    """
    return table(typed.name, *(column(col.name) for col in typed.columns))


def _sqlite_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _applied_row(record: StoredRecord, now: Any) -> dict[str, Any]:
    event = record.event
    return {
        "event_id": str(event.event_id),
        "type": event.type.value,
        "user_id": event.user_id,
        "recipe_id": event.recipe_id,
        "trace_id": event.trace_id,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "applied_at": now,
    }


def _favorite_row(
    event: FavoriteEvent, now: Any, timestamp: Callable[[datetime], Any]
) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "recipe_id": event.recipe_id,
        "user_name": event.user_name,
        "guild_id": event.guild_id,
        "source": event.source.value,
        "event_id": str(event.event_id),
        "trace_id": event.trace_id,
        "occurred_at": timestamp(event.occurred_at),
        "stored_at": now,
    }


def _removal_row(
    event: FavoriteEvent, timestamp: Callable[[datetime], Any]
) -> dict[str, Any]:
    return {
        "b_user_id": event.user_id,
        "b_recipe_id": event.recipe_id,
        "b_occurred_at": timestamp(event.occurred_at),
    }
