"""The embedded broker, and aiokafka's features the pipeline needs, on real Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline_core.broker.embedded import EmbeddedBroker, parse_java_major

pytestmark = pytest.mark.slow


def _java_children(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid)


async def test_broker_round_trip_with_idempotent_producer_and_group_commit() -> None:
    """Start, create a topic, produce idempotently, consume as a group, commit,
    read lag 0, stop: no Java process remains."""
    topic = f"round-trip-{uuid.uuid4().hex[:8]}"
    group = f"group-{uuid.uuid4().hex[:8]}"
    broker = EmbeddedBroker()
    await broker.start()
    java_pid = broker.pid
    try:
        bootstrap = broker.bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(topic, num_partitions=3, replication_factor=1)]
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, enable_idempotence=True, acks="all"
            )
            await producer.start()
            try:
                sent = [
                    await producer.send_and_wait(
                        topic, f"v{i}".encode(), key=b"k%d" % i
                    )
                    for i in range(30)
                ]
            finally:
                await producer.stop()
            assert len({(m.partition, m.offset) for m in sent}) == 30

            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            try:
                seen: list[bytes] = []
                async with asyncio.timeout(30):
                    while len(seen) < 30:
                        batch = await consumer.getmany(timeout_ms=500)
                        for records in batch.values():
                            seen.extend(r.value for r in records)
                await consumer.commit()
            finally:
                await consumer.stop()
            assert sorted(seen) == sorted(f"v{i}".encode() for i in range(30))

            committed = await admin.list_consumer_group_offsets(group)
            partitions = [TopicPartition(topic, p) for p in range(3)]
            probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await probe.start()
            try:
                ends = await probe.end_offsets(partitions)
            finally:
                await probe.stop()
            lag = sum(ends[tp] - committed[tp].offset for tp in partitions)
            assert lag == 0
        finally:
            await admin.close()
    finally:
        await broker.close()
    await asyncio.to_thread(_wait_gone, java_pid)
    assert not _java_children(java_pid)


def _wait_gone(pid: int | None) -> None:
    if pid is None:
        return
    try:
        psutil.Process(pid).wait(timeout=10)
    except psutil.NoSuchProcess:
        return


async def test_two_brokers_get_distinct_ports_and_directories() -> None:
    """Two embedded brokers side by side never share a port or a data dir."""
    async with EmbeddedBroker() as first, EmbeddedBroker() as second:
        assert first.bootstrap_servers != second.bootstrap_servers
        assert first.data_dir != second.data_dir
        assert first.running
        assert second.running


async def test_restart_keeps_address_and_data(tmp_path: Path) -> None:
    """stop() then start() brings the broker back on the same port, same records."""
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    async with EmbeddedBroker(tmp_path / "kafka") as broker:
        address = broker.bootstrap_servers
        producer = AIOKafkaProducer(bootstrap_servers=address, acks="all")
        admin = AIOKafkaAdminClient(bootstrap_servers=address)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        await producer.start()
        await producer.send_and_wait(topic, b"before")
        await producer.stop()

        await broker.stop()
        await broker.start()

        assert broker.bootstrap_servers == address
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=address, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert record.value == b"before"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recipe_pipeline", *args]


def test_missing_java_gives_one_clear_line(tmp_path: Path) -> None:
    """Without Java on PATH or JAVA_HOME, `broker` exits 1 with a line that says what
    to install, and no traceback."""
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)
    result = subprocess.run(
        _cli("broker"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Java 17" in result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stderr


def test_port_clash_gives_one_clear_line() -> None:
    """Asking for a port someone else holds ends with one line naming the port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            _cli("broker", "--port", str(port)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_java_version_parsing() -> None:
    """Both version styles of `java -version` are read: 17.0.9 and 1.8.0_392."""
    assert parse_java_major('openjdk version "17.0.9" 2023-10-17') == 17
    assert parse_java_major('java version "1.8.0_392"') == 8
    assert parse_java_major("no version here") is None


async def test_broker_command_ready_file_serves_an_outside_client(
    tmp_path: Path,
) -> None:
    """`recipe-pipeline broker --ready-file` gives an address an outside aiokafka
    client produces to and consumes from; SIGTERM ends it with 0 and no Java left."""
    ready = tmp_path / "ready.json"
    process = await asyncio.create_subprocess_exec(
        *_cli("broker", "--ready-file", str(ready)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            while not ready.exists():
                assert process.returncode is None
                await asyncio.sleep(0.1)
        info = json.loads(ready.read_text())
        bootstrap = info["kafka_bootstrap"]
        topic = f"outside-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b"hello")
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), timeout=30)
        finally:
            await consumer.stop()
        assert record.value == b"hello"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip().splitlines()[-1] == bootstrap
    await asyncio.to_thread(_wait_gone, info["pid"])
    assert not psutil.pid_exists(info["pid"])


def test_cluster_ids_never_start_with_a_dash() -> None:
    """StorageTool reads a leading '-' as an option; generated ids avoid it."""
    from pipeline_core.broker.embedded import _kafka_cluster_id

    ids = [_kafka_cluster_id() for _ in range(2000)]

    assert not any(cluster_id.startswith("-") for cluster_id in ids)
    assert all(len(cluster_id) == 22 for cluster_id in ids)
