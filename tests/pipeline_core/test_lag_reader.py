"""LagReader and ``recipe-pipeline lag`` against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from pipeline_core.lag import BrokerUnreachable, GroupNotFound, LagReader, TopicNotFound
from pipeline_core.stack.topics import ensure_topics

pytestmark = pytest.mark.slow


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A fresh 3-partition topic holding 4 records on each partition."""
    name = f"lag-{uuid.uuid4().hex[:10]}"
    await ensure_topics(kafka_bootstrap, [name], partitions=3, timeout=30)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(3):
            for n in range(4):
                await producer.send_and_wait(name, b"r%d" % n, partition=partition)
    finally:
        await producer.stop()
    return name


async def commit(
    bootstrap: str, group: str, offsets: dict[TopicPartition, int]
) -> None:
    """Commit ``offsets`` for ``group`` as a manually assigned member would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_committed_group_lag_is_end_minus_committed(
    kafka_bootstrap: str, topic: str
) -> None:
    """Lag per partition is end offset minus committed offset, total their sum."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    await commit(
        kafka_bootstrap, group, {TopicPartition(topic, p): p for p in range(3)}
    )

    async with LagReader(kafka_bootstrap) as reader:
        snapshot = await reader.read(group, topic)

    assert [(p.committed, p.end_offset, p.lag) for p in snapshot.partitions] == [
        (0, 4, 4),
        (1, 4, 3),
        (2, 4, 2),
    ]
    assert snapshot.total == 9


async def test_uncommitted_partitions_count_from_the_earliest_offset(
    kafka_bootstrap: str, topic: str
) -> None:
    """A group with no offset on a partition whose log starts at 3 lags by
    end - 3 there, never by the whole end offset, never negative."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    await commit(kafka_bootstrap, group, {TopicPartition(topic, 0): 4})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(3)})
    finally:
        await admin.close()

    async with LagReader(kafka_bootstrap) as reader:
        snapshot = await reader.read(group, topic)

    by_partition = {p.partition: p for p in snapshot.partitions}
    assert by_partition[0].lag == 0
    assert (by_partition[1].committed, by_partition[1].lag) == (None, 1)
    assert (by_partition[2].committed, by_partition[2].lag) == (None, 4)


async def test_unknown_group_raises_group_not_found(
    kafka_bootstrap: str, topic: str
) -> None:
    """Reading a group the broker never saw raises GroupNotFound naming it."""
    async with LagReader(kafka_bootstrap) as reader:
        with pytest.raises(GroupNotFound, match="no-such-group"):
            await reader.read("no-such-group", topic)


async def test_unknown_topic_raises_topic_not_found(kafka_bootstrap: str) -> None:
    """Reading lag on a topic that does not exist raises TopicNotFound."""
    async with LagReader(kafka_bootstrap) as reader:
        with pytest.raises(TopicNotFound, match="missing-topic"):
            await reader.read("any-group", f"missing-topic-{uuid.uuid4().hex[:6]}")


async def test_unreachable_broker_raises_within_the_timeout() -> None:
    """A bootstrap address nobody listens on raises BrokerUnreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BrokerUnreachable, match=f"127.0.0.1:{port}"):
        async with LagReader(f"127.0.0.1:{port}", timeout_s=3) as reader:
            await reader.read("g", "t")


async def run_lag(kafka_bootstrap: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "lag",
        *args,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_lag_json_prints_one_object_with_partitions_and_status(
    kafka_bootstrap: str, topic: str
) -> None:
    """``lag --json`` prints one JSON object: per partition committed, end
    offset, lag and status, the total and the group's status."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    await commit(
        kafka_bootstrap, group, {TopicPartition(topic, p): 4 for p in range(3)}
    )

    code, out, _err = await run_lag(
        kafka_bootstrap, "--json", "--group", group, "--topic", topic
    )

    assert code == 0
    report = json.loads(out)
    assert (report["group"], report["topic"], report["total"]) == (group, topic, 0)
    assert report["status"] == "OK"
    assert [p["lag"] for p in report["partitions"]] == [0, 0, 0]
    assert {"committed", "end_offset", "status"} <= set(report["partitions"][0])


async def test_lag_for_an_unknown_group_exits_1_with_one_line(
    kafka_bootstrap: str, topic: str
) -> None:
    """``lag`` for a group that does not exist exits 1 with a one-line reason."""
    code, out, err = await run_lag(
        kafka_bootstrap, "--json", "--group", "nobody-here", "--topic", topic
    )
    assert code == 1
    assert out == ""
    assert "nobody-here" in err
    assert len(err.strip().splitlines()) == 1
