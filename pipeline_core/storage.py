"""Storage models and the database engine shared by the backend and the consumer.

SQLite runs in WAL mode with a busy timeout so that readers (backend, dashboard)
never block the consumer's writes; ``DATABASE_URL`` may name PostgreSQL instead, and
the same models and statements run there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Field, SQLModel, create_engine

#: How long a SQLite connection waits on a lock before it reports "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Recipe(SQLModel, table=True):
    """One recipe of the shipped catalog."""

    id: str = Field(primary_key=True, max_length=9)
    title: str = Field(index=True, max_length=200)
    cuisine: str = Field(max_length=60)
    minutes: int
    tags: str = Field(default="", description="comma-separated tags")
    ingredients: str = Field(default="", description="semicolon-separated ingredients")


class Favorite(SQLModel, table=True):
    """A user's stored favourite: one row per (user, recipe)."""

    user_id: str = Field(primary_key=True, max_length=20)
    recipe_id: str = Field(primary_key=True, max_length=9)
    user_name: str = Field(max_length=100)
    guild_id: str | None = Field(default=None, max_length=20)
    source: str = Field(max_length=20)
    event_id: str = Field(max_length=36)
    trace_id: str = Field(max_length=64)
    occurred_at: datetime
    stored_at: datetime = Field(default_factory=utc_now, index=True)


class AppliedEvent(SQLModel, table=True):
    """An event the consumer applied; the record that makes applying idempotent.

    Rows older than the retention window are pruned by the consumer: Kafka only
    redelivers records after the last committed offset, so an event applied and
    committed long ago cannot come back (see the consumer's docstring).
    """

    event_id: str = Field(primary_key=True, max_length=36)
    type: str = Field(max_length=20)
    user_id: str = Field(max_length=20)
    recipe_id: str = Field(max_length=9)
    trace_id: str = Field(max_length=64, index=True)
    topic: str = Field(max_length=255)
    partition: int
    offset: int
    applied_at: datetime = Field(default_factory=utc_now, index=True)


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``database_url``, tuned for concurrent readers.

    For SQLite the parent folder is created, WAL mode and a busy timeout are set on
    every connection. Nothing connects until the engine is first used.

    Args:
        database_url: a ``sqlite:///`` or ``postgresql://`` URL.
        **kwargs: passed to :func:`sqlmodel.create_engine`.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(database_url, pool_pre_ping=True, **kwargs)

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
    }
    engine = create_engine(database_url, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _tune_sqlite_connection)
    return engine


def _tune_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def create_schema(engine: Engine) -> None:
    """Create the tables that do not exist yet (idempotent)."""
    SQLModel.metadata.create_all(engine)
