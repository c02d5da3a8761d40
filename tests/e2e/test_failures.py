"""The pipeline under failure: crashes, bad records, duplicates, broken hops.

Each test states what must survive; the ones that break a hop on purpose check that
the harness's failure message names that hop.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from pipeline_core.events import EventType, FavoriteEvent, encode_event, header_value
from recipe_pipeline.harness import Ack, HopTimeout, PipelineUnderTest

pytestmark = pytest.mark.e2e

_user_ids = itertools.count(2_000_001)


def new_user() -> str:
    """A user id no other test of the module uses."""
    return str(next(_user_ids))


async def _produce(
    pipeline: PipelineUnderTest,
    value: bytes,
    *,
    key: bytes,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=pipeline.addresses.kafka_bootstrap, acks="all"
    )
    await producer.start()
    try:
        await producer.send_and_wait(pipeline.topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


@pytest.mark.slow
async def test_consumer_killed_mid_stream_loses_and_duplicates_nothing(
    pipeline: PipelineUnderTest,
) -> None:
    """SIGKILL the consumer while 300 favourites flow, start it again: every
    acknowledged favourite is stored, each event applied exactly once."""
    users = [new_user() for _ in range(100)]

    async def send_all() -> list[Ack]:
        return [
            await pipeline.add_favorite(u, r) for u in users for r in ("1", "2", "3")
        ]

    sender = asyncio.create_task(send_all())
    await pipeline.wait_favorite(users[5], "1")
    await pipeline.kill_consumer()
    acks = await sender
    await pipeline.start_consumer()
    await pipeline.wait_lag_zero(timeout=90)

    for ack, (user, recipe) in zip(
        acks, ((u, r) for u in users for r in ("1", "2", "3")), strict=True
    ):
        row = await pipeline.stored_favorite(user, recipe)
        assert row is not None, await pipeline.diagnose(user, recipe, ack=ack)
        assert await pipeline.applied_count(user, recipe) == 1


async def test_malformed_record_is_dead_lettered_while_good_ones_flow(
    pipeline: PipelineUnderTest,
) -> None:
    """A record that is not an event goes to the .dlq with headers naming where it
    came from and why; favourites sent around it are stored."""
    user = new_user()
    marker = f"not-an-event-{uuid.uuid4().hex}".encode()

    before = await pipeline.add_favorite(user, "10")
    await _produce(pipeline, marker, key=user.encode())
    after = await pipeline.add_favorite(user, "11")

    dead = await pipeline.wait_record(lambda r: r.value == marker, dead_letters=True)
    await pipeline.wait_favorite(user, "10", ack=before)
    await pipeline.wait_favorite(user, "11", ack=after)
    assert header_value(dead.headers, "dlq-source-topic") == pipeline.topic
    assert header_value(dead.headers, "dlq-source-partition") is not None
    assert header_value(dead.headers, "dlq-source-offset") is not None
    assert "schema-v1" in (header_value(dead.headers, "dlq-error") or "")


async def test_duplicate_records_are_absorbed(pipeline: PipelineUnderTest) -> None:
    """The same event delivered three times is applied once."""
    user = new_user()
    event = FavoriteEvent(
        type=EventType.ADDED,
        user_id=user,
        user_name="Dup",
        recipe_id="14",
        trace_id=uuid.uuid4().hex,
    )
    key, value, headers = encode_event(event)

    for _ in range(3):
        await _produce(pipeline, value, key=key, headers=headers)
    await pipeline.wait_favorite(user, "14")
    await pipeline.wait_lag_zero()

    assert await pipeline.applied_count(user, "14") == 1


async def test_records_carry_the_contract_headers(pipeline: PipelineUnderTest) -> None:
    """An API-published record has trace-id, schema-version and content-type, and
    its trace id is the one the API answered with."""
    user = new_user()
    ack = await pipeline.add_favorite(user, "15")

    record = await pipeline.wait_record(
        lambda r: r.partition == ack.partition and r.offset == ack.offset
    )

    assert header_value(record.headers, "trace-id") == ack.trace_id
    assert header_value(record.headers, "schema-version") == "1"
    assert header_value(record.headers, "content-type") == "application/json"


async def test_stopped_consumer_is_named_in_the_failure(
    pipeline: PipelineUnderTest,
) -> None:
    """With the consumer stopped, a wait fails naming the consumer hop and the
    offsets; after a restart the favourite lands."""
    user = new_user()
    await pipeline.stop_consumer()
    try:
        ack = await pipeline.add_favorite(user, "16")
        with pytest.raises(HopTimeout) as caught:
            await pipeline.wait_favorite(user, "16", ack=ack, timeout=2)
    finally:
        await pipeline.start_consumer()

    message = str(caught.value)
    assert "stopped at the consumer hop" in message
    assert f"offset {ack.offset}" in message
    await pipeline.wait_favorite(user, "16", ack=ack)


async def test_record_without_headers_is_named_in_the_diagnosis(
    pipeline: PipelineUnderTest,
) -> None:
    """A record published without its headers is reported at the topic hop."""
    user = new_user()
    event = FavoriteEvent(
        type=EventType.ADDED,
        user_id=user,
        user_name="NoHeaders",
        recipe_id="17",
        trace_id=uuid.uuid4().hex,
    )
    key, value, _headers = encode_event(event)
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.addresses.kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(pipeline.topic, value, key=key)
    finally:
        await producer.stop()
    ack = Ack(
        str(event.event_id), event.trace_id, sent.topic, sent.partition, sent.offset
    )

    report = await pipeline.diagnose(user, "17", ack=ack)

    assert "stopped at the topic hop" in report
    assert "trace-id" in report


async def test_wrong_topic_is_named_in_the_diagnosis(
    pipeline: PipelineUnderTest,
) -> None:
    """An acknowledgement for another topic than the consumer's is reported as such."""
    user = new_user()
    real = await pipeline.add_favorite(user, "18")
    elsewhere = Ack(real.event_id, real.trace_id, "some-other-topic", 0, 0)

    report = await pipeline.diagnose(user, "19", ack=elsewhere)

    assert "stopped at the topic hop" in report
    assert "some-other-topic" in report
