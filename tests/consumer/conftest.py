"""Fixtures for the consumer's tests: a fresh topic, database and group per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from consumer.metrics import ConsumerMetrics
from consumer.service import ConsumerOptions, StoringConsumer
from consumer.store import FavoriteStore
from pipeline_core.events import EventType, FavoriteEvent, encode_event
from pipeline_core.lag import LagReader
from pipeline_core.stack.topics import ensure_topics
from pipeline_core.storage import AppliedEvent, Favorite, create_schema, make_engine

PARTITIONS = 3


@dataclass(frozen=True)
class Pipeline:
    """One test's own topic, group and database."""

    bootstrap: str
    topic: str
    group: str
    database_url: str
    engine: Engine

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic}.dlq"

    def env(self) -> dict[str, str]:
        """The environment a consumer subprocess of this pipeline runs with."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "FAVORITES_TOPIC": self.topic,
            "CONSUMER_GROUP": self.group,
            "DATABASE_URL": self.database_url,
            "FAVORITES_TOPIC_PARTITIONS": str(PARTITIONS),
        }

    def count(self, table: type[Favorite] | type[AppliedEvent]) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)

    def favourites(self) -> set[tuple[str, str]]:
        with Session(self.engine) as session:
            rows = session.execute(select(Favorite.user_id, Favorite.recipe_id))  # type: ignore[call-overload]
            return {(row[0], row[1]) for row in rows}


@pytest.fixture
async def pipeline(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    suffix = uuid.uuid4().hex[:10]
    topic = f"favs-{suffix}"
    await ensure_topics(
        kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS, timeout=30
    )
    database_url = f"sqlite:///{tmp_path / 'favorites.db'}"
    engine = make_engine(database_url)
    create_schema(engine)
    yield Pipeline(kafka_bootstrap, topic, f"store-{suffix}", database_url, engine)
    engine.dispose()


def event(
    kind: EventType = EventType.ADDED, user: str = "1001", recipe: str = "7"
) -> FavoriteEvent:
    return FavoriteEvent(
        type=kind,
        user_id=user,
        user_name=f"user {user}",
        recipe_id=recipe,
        trace_id=uuid.uuid4().hex,
    )


async def produce(
    pipeline: Pipeline,
    events: Iterable[FavoriteEvent] = (),
    raw: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Publish raw (key, value) records, then events, and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all")
    await producer.start()
    try:
        pending = [
            await producer.send(pipeline.topic, value=value, key=key)
            for key, value in raw
        ]
        for item in events:
            key, value, headers = encode_event(item)
            pending.append(
                await producer.send(
                    pipeline.topic, value=value, key=key, headers=headers
                )
            )
        async with asyncio.timeout(60):
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> None:
    """Await ``condition`` becoming true, checking every 50 ms, up to ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                outcome = condition()
                if not isinstance(outcome, bool):
                    outcome = await outcome
                if outcome:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


async def total_lag(pipeline: Pipeline) -> int:
    async with LagReader(pipeline.bootstrap) as reader:
        return (await reader.read(pipeline.group, pipeline.topic)).total


@dataclass
class RunningConsumer:
    task: asyncio.Task[None]
    metrics: ConsumerMetrics
    ready: asyncio.Event


@asynccontextmanager
async def running_consumer(
    pipeline: Pipeline, *, max_records: int = 2000
) -> AsyncIterator[RunningConsumer]:
    """An in-process StoringConsumer of ``pipeline``, stopped (and checked) on exit."""
    options = ConsumerOptions(
        bootstrap=pipeline.bootstrap,
        topic=pipeline.topic,
        group=pipeline.group,
        max_records=max_records,
        poll_timeout_ms=200,
    )
    metrics = ConsumerMetrics()
    consumer = StoringConsumer(options, FavoriteStore(pipeline.engine), metrics)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, ready.set))
    try:
        async with asyncio.timeout(60):
            await asyncio.wait(
                {task, asyncio.create_task(ready.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
        if task.done():
            task.result()
        yield RunningConsumer(task, metrics, ready)
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await task
