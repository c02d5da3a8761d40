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
round trip per event; each is compiled once and its rows go to the driver as tuples
of driver-ready values. The same code runs on SQLite and PostgreSQL. On SQLite the
writing connection gets a larger page cache (:data:`SQLITE_CACHE_KIB`) and a less
frequent WAL checkpoint (:data:`SQLITE_CHECKPOINT_PAGES`): index pages touched by
every batch stay in memory and are copied to the database file once per checkpoint
rather than once per transaction.
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
#: Page cache of the consumer's SQLite connection, in KiB (SQLite's default: 2,000).
SQLITE_CACHE_KIB = 65_536
#: WAL pages written before a checkpoint (SQLite's default: 1,000, about 4 MB).
SQLITE_CHECKPOINT_PAGES = 10_000

#: Column order of the rows each statement takes.
APPLIED_COLUMNS = (
    "event_id",
    "type",
    "user_id",
    "recipe_id",
    "trace_id",
    "topic",
    "partition",
    "offset",
    "applied_at",
)
FAVORITE_COLUMNS = (
    "user_id",
    "recipe_id",
    "user_name",
    "guild_id",
    "source",
    "event_id",
    "trace_id",
    "occurred_at",
    "stored_at",
)
REMOVAL_COLUMNS = ("b_user_id", "b_recipe_id", "b_occurred_at")


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
        self._record_applied = _DriverStatement(
            self._applied.insert(), engine, APPLIED_COLUMNS
        )
        self._upsert_favorite = _DriverStatement(
            self._upsert(), engine, FAVORITE_COLUMNS
        )
        self._remove_favorite = _DriverStatement(
            self._removal(), engine, REMOVAL_COLUMNS
        )
        lookup_names = tuple(f"id_{n}" for n in range(LOOKUP_CHUNK))
        self._lookup_applied = _DriverStatement(self._lookup(), engine, lookup_names)

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
                    self._tune(conn)
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

    def _tune(self, conn: Any) -> None:
        """Give a SQLite connection the consumer's cache and checkpoint, once."""
        if self._dialect != "sqlite" or conn.info.get("favorite_store_tuned"):
            return
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        conn.info["favorite_store_tuned"] = True

    def _apply(self, conn: Any, records: Sequence[StoredRecord]) -> BatchResult:
        ids = [str(record.event.event_id) for record in records]
        seen = self._already_applied(conn, ids)

        fresh: list[tuple[StoredRecord, str]] = []
        for record, event_id in zip(records, ids, strict=True):
            if event_id in seen:
                continue
            seen.add(event_id)
            fresh.append((record, event_id))
        if not fresh:
            return BatchResult(0, len(records), 0, 0)

        now = self._timestamp(utc_now())
        self._record_applied.run(
            conn, [_applied_row(r, event_id, now) for r, event_id in fresh]
        )

        latest: dict[tuple[str, str], tuple[FavoriteEvent, str]] = {}
        for record, event_id in fresh:
            event = record.event
            latest[(event.user_id, event.recipe_id)] = (event, event_id)
        timestamp = self._timestamp
        adds = [
            _favorite_row(event, event_id, now, timestamp)
            for event, event_id in latest.values()
            if event.type is EventType.ADDED
        ]
        removes = [
            (event.user_id, event.recipe_id, timestamp(event.occurred_at))
            for event, _event_id in latest.values()
            if event.type is EventType.REMOVED
        ]
        if adds:
            self._upsert_favorite.run(conn, adds)
        if removes:
            self._remove_favorite.run(conn, removes)
        return BatchResult(
            len(fresh), len(records) - len(fresh), len(adds), len(removes)
        )

    def _already_applied(self, conn: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            # The statement takes exactly LOOKUP_CHUNK ids; repeats change nothing.
            chunk += [chunk[0]] * (LOOKUP_CHUNK - len(chunk))
            found.update(self._lookup_applied.query(conn, tuple(chunk)))
        return found

    def _lookup(self) -> Any:
        event_id = self._applied.c.event_id
        return select(event_id).where(
            event_id.in_([bindparam(f"id_{n}") for n in range(LOOKUP_CHUNK)])
        )

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
    """A statement compiled once for the engine's dialect, run straight on the driver.

    Rows are tuples of driver-ready values (see :func:`_untyped`) in the order of
    ``columns``, the statement's bound parameter names. They go to the driver as
    they are when its parameters are positional in that order (SQLite), else
    reordered or named, skipping SQLAlchemy's per-row parameter processing (the
    batch's main cost otherwise).
    """

    def __init__(self, statement: Any, engine: Engine, columns: Sequence[str]) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._columns = tuple(columns)
        self._order: tuple[int, ...] | None = None
        self._named = not compiled.positional
        if compiled.positional:
            names = tuple(compiled.positiontup)
            if names != self._columns:
                self._order = tuple(self._columns.index(name) for name in names)
        elif set(compiled.binds) - set(self._columns):
            raise ValueError(f"statement parameters are not {self._columns}")

    def run(self, conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run the statement once per row, as one ``executemany``."""
        conn.exec_driver_sql(self._sql, self._parameters(rows))

    def query(self, conn: Any, row: tuple[Any, ...]) -> list[Any]:
        """Run the statement once with ``row``; return the first column of each row."""
        (parameters,) = self._parameters([row])
        return [found[0] for found in conn.exec_driver_sql(self._sql, parameters)]

    def _parameters(self, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self._named:
            columns = self._columns
            return [dict(zip(columns, row, strict=True)) for row in rows]
        if self._order is None:
            return rows if isinstance(rows, list) else list(rows)
        order = self._order
        return [tuple(row[n] for n in order) for row in rows]


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
    """``moment`` in UTC as SQLAlchemy stores it in SQLite (microseconds always)."""
    if moment.tzinfo is None or moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def _as_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _applied_row(record: StoredRecord, event_id: str, now: Any) -> tuple[Any, ...]:
    event = record.event
    return (
        event_id,
        event.type._value_,
        event.user_id,
        event.recipe_id,
        event.trace_id,
        record.topic,
        record.partition,
        record.offset,
        now,
    )


def _favorite_row(
    event: FavoriteEvent,
    event_id: str,
    now: Any,
    timestamp: Callable[[datetime], Any],
) -> tuple[Any, ...]:
    return (
        event.user_id,
        event.recipe_id,
        event.user_name,
        event.guild_id,
        event.source._value_,
        event_id,
        event.trace_id,
        timestamp(event.occurred_at),
        now,
    )
