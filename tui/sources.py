"""Where the dashboard's data comes from, and what its actions do to the pipeline.

Everything here is bounded (timeouts, batch sizes, concurrency). The Kafka and HTTP
parts are asyncio and run on the dashboard's loop without blocking it; the database
reads are plain blocking functions meant for a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from pipeline_core.events import Source
from pipeline_core.storage import AppliedEvent, Favorite
from tui.model import TopicRecord, record_from_kafka

logger = logging.getLogger(__name__)

#: Most records the topic tail hands over per batch.
TAIL_BATCH = 500
#: Records decoded in one go before the tail lets the dashboard's loop run others
#: (decoding is the feed's work; this bounds how long a key press waits behind it).
DECODE_CHUNK = 100
#: Longest wait of the topic tail for one batch, in milliseconds.
TAIL_WAIT_MS = 300
#: Requests a burst keeps in flight at most.
BURST_CONCURRENCY = 32
#: Timeout of each HTTP call the dashboard makes, in seconds.
HTTP_TIMEOUT_S = 5.0
#: Longest wait for the records at the committed offsets, per lag poll, in seconds.
STAMP_TIMEOUT_S = 2.0
#: Bytes fetched per partition at most when reading a committed record's stamp.
STAMP_FETCH_BYTES = 64 * 1024
#: Bytes the "inject a malformed record" action writes: JSON cut short.
MALFORMED_VALUE = b'{"event_id": "not-a-uuid", "type": "favorite.added", '


class TopicTail:
    """Reads the interactions topic and its dead letters live, committing nothing.

    It has no consumer group, so it never moves the pipeline's offsets; it starts
    at the end of each partition. Use as ``async with TopicTail(...) as tail`` and
    call :meth:`next_batch` in a loop.

    Args:
        bootstrap: the Kafka bootstrap servers.
        topic: the interactions topic; ``<topic>.dlq`` is read too.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter_topic = f"{topic}.dlq"
        self._consumer: Any = None

    async def __aenter__(self) -> TopicTail:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topic,
            self.dead_letter_topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="recipe-pipeline-dashboard",
            request_timeout_ms=int(HTTP_TIMEOUT_S * 2000),
        )
        await asyncio.wait_for(consumer.start(), timeout=30)
        self._consumer = consumer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def next_batch(self) -> list[TopicRecord]:
        """The records that arrived since the last call (waits at most briefly)."""
        if self._consumer is None:
            raise RuntimeError("TopicTail is not open; use it with 'async with'")
        batches = await self._consumer.getmany(
            timeout_ms=TAIL_WAIT_MS, max_records=TAIL_BATCH
        )
        messages = [message for part in batches.values() for message in part]
        records: list[TopicRecord] = []
        for start in range(0, len(messages), DECODE_CHUNK):
            if start:
                await asyncio.sleep(0)  # let a key press in between two chunks
            records.extend(
                record_from_kafka(message, dead_letter_topic=self.dead_letter_topic)
                for message in messages[start : start + DECODE_CHUNK]
            )
        records.sort(key=lambda record: record.timestamp)
        return records


class StampReader:
    """Reads the timestamp of the record at a given offset of each partition.

    It has its own consumer without a group (it commits nothing and moves no
    pipeline offset). Each :meth:`read` makes at most one small fetch per partition
    (``max_partition_fetch_bytes`` is :data:`STAMP_FETCH_BYTES`), bounded by
    ``timeout_s``; between reads its partitions are paused, so it fetches nothing.
    A stamp already read for the same offset is not fetched again.

    Args:
        bootstrap: the Kafka bootstrap servers.
        topic: the topic whose records are read.
        timeout_s: the longest a :meth:`read` waits for records.
    """

    def __init__(
        self, bootstrap: str, topic: str, *, timeout_s: float = STAMP_TIMEOUT_S
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer: Any = None
        self._known: dict[int, tuple[int, datetime]] = {}

    async def __aenter__(self) -> StampReader:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="recipe-pipeline-dashboard-stamps",
            max_partition_fetch_bytes=STAMP_FETCH_BYTES,
            request_timeout_ms=int(HTTP_TIMEOUT_S * 2000),
        )
        await asyncio.wait_for(consumer.start(), timeout=30)
        self._consumer = consumer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def read(self, offsets: dict[int, int]) -> dict[int, datetime]:
        """The timestamps of the records at ``offsets`` (partition to offset).

        A partition whose record did not arrive within the timeout (or whose
        offset is past the end of its log) is left out.
        """
        from aiokafka import TopicPartition

        if self._consumer is None:
            raise RuntimeError("StampReader is not open; use it with 'async with'")
        consumer = self._consumer
        stamps: dict[int, datetime] = {}
        wanted: dict[TopicPartition, int] = {}
        for partition, offset in offsets.items():
            known = self._known.get(partition)
            if known is not None and known[0] == offset:
                stamps[partition] = known[1]
            else:
                wanted[TopicPartition(self.topic, partition)] = offset
        self._known = {p: k for p, k in self._known.items() if p in offsets}
        if not wanted:
            return stamps
        assigned = {TopicPartition(self.topic, p) for p in offsets}
        if consumer.assignment() != assigned:
            consumer.assign(sorted(assigned))
            consumer.pause(*assigned)
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        consumer.resume(*wanted)
        deadline = time.monotonic() + self.timeout_s
        try:
            while wanted and (left := deadline - time.monotonic()) > 0:
                batches = await consumer.getmany(
                    *wanted, timeout_ms=int(left * 1000), max_records=len(wanted)
                )
                for tp, messages in batches.items():
                    if tp not in wanted:
                        continue
                    found = [m for m in messages if m.offset >= wanted[tp]]
                    if not found or found[0].timestamp < 0:
                        continue
                    stamp = datetime.fromtimestamp(found[0].timestamp / 1000, UTC)
                    stamps[tp.partition] = stamp
                    self._known[tp.partition] = (wanted.pop(tp), stamp)
                    consumer.pause(tp)
        finally:
            consumer.pause(*assigned)
        return stamps


async def inject_malformed_record(bootstrap: str, topic: str) -> tuple[int, int]:
    """Write one record the consumer cannot decode to ``topic``.

    Returns:
        The record's ``(partition, offset)``.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="recipe-pipeline-dashboard",
        request_timeout_ms=int(HTTP_TIMEOUT_S * 1000),
    )
    await asyncio.wait_for(producer.start(), timeout=HTTP_TIMEOUT_S * 2)
    try:
        metadata = await asyncio.wait_for(
            producer.send_and_wait(
                topic,
                MALFORMED_VALUE,
                key=b"dashboard",
                headers=[("trace-id", f"malformed-{uuid.uuid4().hex[:12]}".encode())],
            ),
            timeout=HTTP_TIMEOUT_S * 2,
        )
    finally:
        await producer.stop()
    logger.info(
        "injected a malformed record: topic=%s partition=%s offset=%s",
        topic,
        metadata.partition,
        metadata.offset,
    )
    return metadata.partition, metadata.offset


@dataclass
class BurstResult:
    """How a burst of load went."""

    sent: int = 0
    accepted: int = 0
    failed: int = 0
    last_error: str | None = None


async def send_burst(
    client: httpx.AsyncClient,
    *,
    count: int,
    rate: float,
    recipe_ids: list[str],
    on_progress: Callable[[BurstResult], None] | None = None,
) -> BurstResult:
    """POST ``count`` favourites through the API at about ``rate`` per second.

    Users are random snowflakes; recipes are drawn from ``recipe_ids``. At most
    :data:`BURST_CONCURRENCY` requests are in flight.

    Args:
        client: an httpx client with the backend's base URL and bearer token.
        count: how many favourites to send.
        rate: requests per second (at least 1).
        recipe_ids: recipe ids of the catalog to pick from.
        on_progress: called after each answered request.

    Raises:
        ValueError: ``count`` or ``rate`` is not positive, or no recipe ids.
    """
    if count < 1 or rate < 1 or not recipe_ids:
        raise ValueError("a burst needs a count >= 1, a rate >= 1 and some recipes")
    result = BurstResult()
    limit = asyncio.Semaphore(BURST_CONCURRENCY)
    start = time.monotonic()

    async def one(index: int) -> None:
        body = {
            "user_id": str(random.randint(10**16, 10**18)),  # noqa: S311 - load data
            "user_name": f"load-{index}",
            "recipe_id": random.choice(recipe_ids),  # noqa: S311 - load data
            "source": Source.DASHBOARD.value,
        }
        try:
            response = await client.post("/v1/favorites", json=body)
            if response.status_code == 202:
                result.accepted += 1
            else:
                result.failed += 1
                result.last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            result.failed += 1
            result.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            limit.release()
        if on_progress is not None:
            on_progress(result)

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await limit.acquire()
            result.sent += 1
            group.create_task(one(index))
    return result


async def catalog_recipe_ids(client: httpx.AsyncClient, limit: int = 200) -> list[str]:
    """Recipe ids of the backend's catalog (for bursts)."""
    response = await client.get("/v1/recipes", params={"limit": limit})
    response.raise_for_status()
    return [str(recipe["id"]) for recipe in response.json()["recipes"]]


async def probe_health(client: httpx.AsyncClient) -> str:
    """The backend's readiness in one word: ``ready``, ``not ready`` or ``down``."""
    try:
        response = await client.get("/readyz")
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else "not ready"


@dataclass(frozen=True)
class FavouriteRow:
    """One stored favourite, as the favourites panel shows it."""

    user_id: str
    user_name: str
    recipe_id: str
    source: str
    trace_id: str
    stored_at: datetime


def read_favourites(engine: Engine, limit: int = 100) -> list[FavouriteRow]:
    """The newest ``limit`` stored favourites (blocking: run it in a thread).

    SQLite runs in WAL mode, so this read never blocks the consumer's writes.
    """
    with Session(engine) as session:
        rows = session.exec(
            select(Favorite).order_by(col(Favorite.stored_at).desc()).limit(limit)
        ).all()
    return [
        FavouriteRow(
            user_id=row.user_id,
            user_name=row.user_name,
            recipe_id=row.recipe_id,
            source=row.source,
            trace_id=row.trace_id,
            stored_at=_utc(row.stored_at),
        )
        for row in rows
    ]


def read_applied(engine: Engine, trace_ids: list[str]) -> dict[str, datetime]:
    """When the consumer applied the events of these traces (blocking: a thread)."""
    if not trace_ids:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(AppliedEvent.trace_id, AppliedEvent.applied_at).where(
                col(AppliedEvent.trace_id).in_(trace_ids)
            )
        ).all()
    return {trace_id: _utc(applied_at) for trace_id, applied_at in rows}


def _utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
