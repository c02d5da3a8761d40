"""The Kafka side of the benchmark: a backlog of events, and the bare-aiokafka limits.

The store rate is compared with :func:`bare_consume_rate`, a consume loop that does
nothing with the records; the end-to-end latency with :func:`bare_round_trip`, a
producer and a consumer in this process with nothing in between. Both use the same
client settings as the pipeline's parts (``acks="all"``, batches of up to 2,000
records), so the only difference measured is what the pipeline adds.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline_core.events import EventType, FavoriteEvent, encode_event, new_trace_id

#: Records per ``getmany``, as the storing consumer reads them.
BATCH_RECORDS = 2000
#: Longest wait for a client to connect.
CONNECT_TIMEOUT_S = 30.0


class BaselineError(RuntimeError):
    """A bare-aiokafka measurement could not finish; the message says why."""


def make_event(index: int, users: int = 5000) -> FavoriteEvent:
    """A valid ``favorite.added`` event for a benchmark user and recipe."""
    return FavoriteEvent(
        type=EventType.ADDED,
        user_id=str(100_000_000_000 + index % users),
        user_name=f"bench-{index % users}",
        recipe_id=str(1 + index % 100),
        trace_id=new_trace_id(),
    )


async def produce_backlog(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    timeout: float,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Put ``count`` valid events on ``topic`` and wait until all are acknowledged.

    Raises:
        BaselineError: the broker did not acknowledge them within ``timeout``.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=10,
        max_batch_size=512 * 1024,
        client_id="recipe-pipeline-bench",
    )
    try:
        async with asyncio.timeout(timeout):
            await producer.start()
            pending: list[asyncio.Future[object]] = []
            for index in range(count):
                key, value, headers = encode_event(make_event(index))
                pending.append(
                    await producer.send(topic, value=value, key=key, headers=headers)
                )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if on_progress is not None:
                        on_progress(index + 1)
            await asyncio.gather(*pending)
    except TimeoutError:
        raise BaselineError(
            f"the broker did not take {count} events on {topic} within {timeout:g} s"
        ) from None
    finally:
        await producer.stop()


@dataclass(frozen=True)
class ConsumeRun:
    """A bare consume loop's result: records read, and in how many seconds."""

    records: int
    seconds: float

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def bare_consume_rate(
    bootstrap: str, topic: str, count: int, *, timeout: float
) -> ConsumeRun:
    """Read ``count`` records of ``topic`` from the start, doing nothing with them.

    The clock starts once the client is connected, before the first fetch.

    Raises:
        BaselineError: fewer than ``count`` records arrived within ``timeout``.
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="recipe-pipeline-bench",
    )
    seen = 0
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            started = time.perf_counter()
            while seen < count:
                batch = await consumer.getmany(
                    timeout_ms=500, max_records=BATCH_RECORDS
                )
                seen += sum(len(records) for records in batch.values())
    except TimeoutError:
        raise BaselineError(
            f"only {seen} of {count} records of {topic} arrived within {timeout:g} s"
        ) from None
    finally:
        await consumer.stop()
    return ConsumeRun(seen, time.perf_counter() - started)


async def bare_round_trip(
    bootstrap: str,
    topic: str,
    *,
    rate: float,
    seconds: float,
    on_progress: Callable[[int], None] | None = None,
) -> list[float]:
    """Produce at ``rate`` per second and consume in this process; return latencies.

    Each record carries its send time; the latency is from just before the
    producer's ``send`` to the moment the consumer hands the record over.

    Returns:
        One latency per record, in milliseconds.

    Raises:
        BaselineError: not every record came back within a bounded wait.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", client_id="recipe-pipeline-bench"
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        client_id="recipe-pipeline-bench",
    )
    total = int(rate * seconds)
    latencies: list[float] = []
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await producer.start()
            await consumer.start()
            await consumer.seek_to_end()
            # make sure positions are resolved before the first send
            for partition in consumer.assignment():
                await consumer.position(partition)
        reader = asyncio.create_task(_collect(consumer, total, latencies))
        try:
            await _send_paced(producer, topic, rate, total, on_progress)
            async with asyncio.timeout(seconds + 30):
                await asyncio.shield(reader)
        except TimeoutError:
            raise BaselineError(
                f"only {len(latencies)} of {total} round-trip records came back"
            ) from None
        finally:
            reader.cancel()
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


async def _send_paced(
    producer: object,
    topic: str,
    rate: float,
    total: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    started = time.perf_counter()
    pending: list[asyncio.Future[object]] = []
    keys = [str(100_000_000_000 + n).encode() for n in range(64)]
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        value = struct.pack("!d", time.perf_counter())
        key = random.choice(keys)  # noqa: S311 - spreading keys, not security
        pending.append(await producer.send(topic, value=value, key=key))  # type: ignore[attr-defined]
        if on_progress is not None and index % int(rate) == 0 and index:
            on_progress(index)
    await asyncio.gather(*pending)


async def _collect(consumer: object, total: int, latencies: list[float]) -> None:
    while len(latencies) < total:
        batch = await consumer.getmany(timeout_ms=500)  # type: ignore[attr-defined]
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                (sent,) = struct.unpack("!d", record.value)
                latencies.append((now - sent) * 1000)


async def feed_paced(
    bootstrap: str, topic: str, rate: float, seconds: float, sent: list[int]
) -> None:
    """Produce valid events to ``topic`` at ``rate`` per second for ``seconds``.

    ``sent[0]`` counts the events handed to the producer so far (the caller may
    cancel the feed at any time and still read it).
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, client_id="recipe-pipeline-bench"
    )
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await producer.start()
    try:
        started = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value, headers = encode_event(make_event(index))
            await producer.send(topic, value=value, key=key, headers=headers)
            sent[0] += 1
    finally:
        await producer.stop()
