"""Lag as time behind: the waiting records' timestamps, read from the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from pipeline_core.lag import LagSnapshot, PartitionLag
from pipeline_core.stack.topics import ensure_topics
from tui.app import read_waiting_stamps
from tui.model import behind_from_stamp
from tui.sources import StampReader

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A topic of two partitions: partition 0 holds offsets 0-2 stamped T0+0/1/2 s,
    partition 1 holds offset 0 stamped T0+10 s."""
    name = f"stamps-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [name], partitions=2, timeout=30)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for partition, seconds in ((0, 0), (0, 1), (0, 2), (1, 10)):
            stamp = T0 + timedelta(seconds=seconds)
            await producer.send_and_wait(
                name,
                b"{}",
                partition=partition,
                timestamp_ms=int(stamp.timestamp() * 1000),
            )
    finally:
        await producer.stop()
    return name


async def test_the_record_at_each_waiting_offset_gives_the_time_behind(
    kafka_bootstrap: str, topic: str
) -> None:
    """The stamp of the record at ``end - lag`` of each lagging partition is read,
    and time behind is now minus that stamp; a partition without lag is not read."""
    snapshot = LagSnapshot(
        group="g",
        topic=topic,
        taken_at=T0,
        partitions=(
            PartitionLag(partition=0, committed=1, end_offset=3, lag=2),
            PartitionLag(partition=1, committed=1, end_offset=1, lag=0),
        ),
    )
    now = T0 + timedelta(seconds=5)

    async with StampReader(kafka_bootstrap, topic) as reader:
        stamps = await read_waiting_stamps(reader, snapshot)
        again = await read_waiting_stamps(reader, snapshot)

    assert stamps == {0: T0 + timedelta(seconds=1)}
    assert again == stamps
    assert behind_from_stamp(2, stamps[0], now) == timedelta(seconds=4)


async def test_a_group_that_never_committed_is_behind_from_the_log_start(
    kafka_bootstrap: str, topic: str
) -> None:
    """With no commit, lag counts from the earliest offset: its record's stamp."""
    async with StampReader(kafka_bootstrap, topic) as reader:
        stamps = await reader.read({0: 0, 1: 0})

    assert stamps == {0: T0, 1: T0 + timedelta(seconds=10)}


async def test_an_offset_past_the_end_gives_no_stamp_within_the_timeout(
    kafka_bootstrap: str, topic: str
) -> None:
    """A record that is not there leaves the stamp unknown; the read still returns."""
    async with StampReader(kafka_bootstrap, topic, timeout_s=0.5) as reader:
        stamps = await reader.read({0: 3, 1: 0})

    assert stamps == {1: T0 + timedelta(seconds=10)}
