"""The storing consumer's batch in flight, against the real broker and SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event

from consumer.metrics import ConsumerMetrics
from consumer.service import ConsumerOptions, StoringConsumer
from consumer.store import DatabaseUnavailable, FavoriteStore
from pipeline_core.storage import Favorite, make_engine
from tests.consumer.conftest import (
    Pipeline,
    event,
    produce,
    running_consumer,
    wait_until,
)

pytestmark = pytest.mark.slow


async def test_failed_batch_stops_the_consumer_and_loses_nothing(
    pipeline: Pipeline,
) -> None:
    """A batch whose transaction fails stops the consumer with DatabaseUnavailable
    although no later batch arrives, its offsets stay uncommitted, and the next
    consumer of the group stores the event."""
    stored = event(user="77", recipe="5")
    await produce(pipeline, [stored])
    database = Path(pipeline.engine.url.database or "")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        failing = FavoriteStore(
            _impatient_engine(pipeline.database_url), attempts=1, sleep=lambda _s: None
        )
        options = ConsumerOptions(
            bootstrap=pipeline.bootstrap,
            topic=pipeline.topic,
            group=pipeline.group,
            poll_timeout_ms=200,
        )
        consumer = StoringConsumer(options, failing, ConsumerMetrics())
        with pytest.raises(DatabaseUnavailable):
            async with asyncio.timeout(60):
                await consumer.run(asyncio.Event())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert pipeline.count(Favorite) == 0

    async with running_consumer(pipeline):
        await wait_until(lambda: pipeline.count(Favorite) == 1, 30, "the event")

    assert pipeline.favourites() == {("77", "5")}


def _impatient_engine(database_url: str) -> Any:
    """An engine whose connections wait only 50 ms on a lock."""
    engine = make_engine(database_url)

    def short_busy_timeout(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA busy_timeout=50")

    sqlalchemy_event.listen(engine, "connect", short_busy_timeout)
    return engine
