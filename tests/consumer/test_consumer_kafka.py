"""The storing consumer against the real broker and a real SQLite file."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from pipeline_core.events import (
    DLQ_ERROR,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    EventType,
    FavoriteEvent,
    header_value,
)
from pipeline_core.storage import AppliedEvent, Favorite, make_engine
from tests.consumer.conftest import (
    Pipeline,
    event,
    produce,
    running_consumer,
    total_lag,
    wait_until,
)

pytestmark = pytest.mark.slow


async def test_bad_record_is_dead_lettered_and_the_next_event_stored(
    pipeline: Pipeline,
) -> None:
    """b"not-json{" then a valid event: one row, one dead letter naming its source
    topic, partition, offset and error, and the group's lag back to 0."""
    good = event(user="42", recipe="3")
    await produce(pipeline, raw=[(b"42", b"not-json{")])
    await produce(pipeline, [good])

    async with running_consumer(pipeline) as running:
        await wait_until(lambda: pipeline.count(Favorite) == 1, 30, "the good event")
        await wait_until(
            lambda: (
                running.metrics.registry.get_sample_value(
                    "consumer_events_dead_lettered_total"
                )
                == 1
            ),
            30,
            "dead letter",
        )
        await wait_until(_lag_is_zero(pipeline), 30, "lag 0")

    letters = await _read_all(pipeline, pipeline.dead_letter_topic, 1)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.value == b"not-json{"
    assert header_value(letter.headers, DLQ_SOURCE_TOPIC) == pipeline.topic
    assert header_value(letter.headers, DLQ_SOURCE_OFFSET) == "0"
    assert header_value(letter.headers, DLQ_SOURCE_PARTITION) is not None
    assert "not a schema-v1 event" in (header_value(letter.headers, DLQ_ERROR) or "")
    assert pipeline.favourites() == {("42", "3")}


async def test_ten_thousand_events_end_in_each_users_final_state(
    pipeline: Pipeline,
) -> None:
    """10,000 add/remove events over 500 users: all applied, lag 0, and each
    user's favourites are what replaying their sequence in order gives."""
    rng = random.Random(4)
    events: list[FavoriteEvent] = []
    expected: set[tuple[str, str]] = set()
    for user_index in range(500):
        user = str(900_000 + user_index)
        for _ in range(20):
            recipe = str(rng.randint(1, 4))
            kind = rng.choice([EventType.ADDED, EventType.ADDED, EventType.REMOVED])
            events.append(event(kind, user, recipe))
            if kind is EventType.ADDED:
                expected.add((user, recipe))
            else:
                expected.discard((user, recipe))
    await produce(pipeline, events)

    async with running_consumer(pipeline) as running:
        await wait_until(
            lambda: (
                running.metrics.registry.get_sample_value(
                    "consumer_events_applied_total"
                )
                == 10_000
            ),
            120,
            "10k applied",
        )
        await wait_until(_lag_is_zero(pipeline), 30, "lag 0")

    assert pipeline.count(AppliedEvent) == 10_000
    assert pipeline.favourites() == expected


async def test_second_consumer_joining_mid_stream_stores_each_favourite_once(
    pipeline: Pipeline,
) -> None:
    """A second member joins while the first works: no crash, every favourite
    stored once, lag 0."""
    first_half = [event(user=str(10_000 + n), recipe="1") for n in range(1500)]
    second_half = [event(user=str(10_000 + n), recipe="2") for n in range(1500)]
    await produce(pipeline, first_half)

    async with running_consumer(pipeline, max_records=100) as first:
        await wait_until(lambda: pipeline.count(Favorite) > 0, 30, "first rows")
        async with running_consumer(pipeline, max_records=100) as second:
            await produce(pipeline, second_half)
            await wait_until(lambda: pipeline.count(Favorite) == 3000, 90, "3000 rows")
            await wait_until(_lag_is_zero(pipeline), 30, "lag 0")
            assert not second.task.done()
        assert not first.task.done()

    assert pipeline.count(AppliedEvent) == 3000


async def test_fifty_readers_never_see_database_is_locked(pipeline: Pipeline) -> None:
    """50 threads reading the favourites while the consumer writes 5,000 events
    get no "database is locked" (or any other) error."""
    await produce(pipeline, [event(user=str(50_000 + n)) for n in range(5000)])
    errors: list[BaseException] = []
    done = threading.Event()
    reader_engine = make_engine(pipeline.database_url, pool_size=50, max_overflow=0)

    def read_until_done() -> None:
        while not done.is_set():
            try:
                with Session(reader_engine) as session:
                    session.execute(select(Favorite).limit(20)).all()
            except OperationalError as exc:
                errors.append(exc)
                return

    readers = [threading.Thread(target=read_until_done) for _ in range(50)]
    for reader in readers:
        reader.start()
    try:
        async with running_consumer(pipeline, max_records=250):
            await wait_until(lambda: pipeline.count(Favorite) == 5000, 120, "5000 rows")
    finally:
        done.set()
        for reader in readers:
            await asyncio.to_thread(reader.join, 30)
        reader_engine.dispose()

    assert errors == []


def _lag_is_zero(pipeline: Pipeline):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return await total_lag(pipeline) == 0

    return check


async def _read_all(pipeline: Pipeline, topic: str, count: int) -> list[object]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=pipeline.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[object] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
        # Anything beyond ``count`` that is already there is read too.
        batch = await consumer.getmany(timeout_ms=500)
        for part in batch.values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records
