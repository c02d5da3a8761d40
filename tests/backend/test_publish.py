"""Publishing against the real broker: what a 202 promises is on the topic."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from backend.app import create_app
from pipeline_core.events import decode_event, header_value
from pipeline_core.settings import Settings
from tests.backend.conftest import AUTH, favorite_body, read_records, serve_in_process


async def test_post_puts_exactly_one_record_with_key_headers_and_schema(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """One POST gives one record: key user_id, v1 headers, a valid v1 value."""
    response = await client.post(
        "/v1/favorites",
        json=favorite_body(guild_id="42", source="discord-slash"),
        headers={**AUTH, "X-Trace-Id": "trace-one-post-0001"},
    )

    assert response.status_code == 202
    ack = response.json()
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 1)
    assert len(records) == 1
    record = records[0]
    event = decode_event(record.value)
    assert record.key == b"123456789012345678"
    assert (record.partition, record.offset) == (ack["partition"], ack["offset"])
    assert header_value(record.headers, "trace-id") == "trace-one-post-0001"
    assert header_value(record.headers, "schema-version") == "1"
    assert header_value(record.headers, "content-type") == "application/json"
    assert str(event.event_id) == ack["event_id"]
    assert event.type == "favorite.added"
    assert (event.user_id, event.recipe_id, event.guild_id) == (
        "123456789012345678",
        "8",
        "42",
    )
    assert event.source == "discord-slash"
    assert event.trace_id == "trace-one-post-0001" == ack["trace_id"]
    assert response.headers["X-Trace-Id"] == "trace-one-post-0001"
    assert set(json.loads(record.value)) == {
        "event_id",
        "type",
        "user_id",
        "user_name",
        "recipe_id",
        "guild_id",
        "source",
        "occurred_at",
        "trace_id",
    }


async def test_delete_publishes_a_removed_event(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """DELETE /v1/favorites/{user}/{recipe} publishes favorite.removed for them."""
    response = await client.delete(
        "/v1/favorites/77/12", params={"user_name": "Bea"}, headers=AUTH
    )

    assert response.status_code == 202
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 1)
    event = decode_event(records[0].value)
    assert (event.type, event.user_id, event.recipe_id, event.user_name) == (
        "favorite.removed",
        "77",
        "12",
        "Bea",
    )


async def test_trace_id_is_made_when_absent_and_put_in_the_event(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """Without X-Trace-Id one is made, echoed, and carried by the record."""
    response = await client.post("/v1/favorites", json=favorite_body(), headers=AUTH)

    made = response.headers["X-Trace-Id"]
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 1)
    assert response.json()["trace_id"] == made
    assert header_value(records[0].headers, "trace-id") == made
    assert decode_event(records[0].value).trace_id == made


async def test_200_concurrent_posts_give_200_acknowledged_distinct_records(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """200 concurrent POSTs: 200 202s, 200 distinct offsets, 200 records on topic."""
    bodies = [
        favorite_body(user_id=str(1000 + n), recipe_id=str(1 + n % 100))
        for n in range(200)
    ]

    responses = await asyncio.gather(
        *(client.post("/v1/favorites", json=b, headers=AUTH) for b in bodies)
    )

    assert [r.status_code for r in responses] == [202] * 200
    acks = {(r.json()["partition"], r.json()["offset"]) for r in responses}
    assert len(acks) == 200
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 200)
    assert len(records) == 200
    assert {(r.partition, r.offset) for r in records} == acks
    event_ids = {str(decode_event(r.value).event_id) for r in records}
    assert event_ids == {r.json()["event_id"] for r in responses}


async def test_an_existing_topic_is_accepted_at_start(
    backend_settings: Settings,
) -> None:
    """A second app on the same topic starts (topics already exist) and publishes."""
    async with serve_in_process(create_app(backend_settings)) as first:
        await first.get("/healthz")
    async with serve_in_process(create_app(backend_settings)) as second:
        response = await second.post(
            "/v1/favorites", json=favorite_body(), headers=AUTH
        )

    assert response.status_code == 202
    uuid.UUID(response.json()["event_id"])


async def test_start_creates_the_topic_and_its_dead_letter_topic(
    backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """Starting the app creates <topic> and <topic>.dlq with the configured count."""
    settings = backend_settings.model_copy(update={"favorites_topic_partitions": 2})
    async with serve_in_process(create_app(settings)):
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(
                [settings.favorites_topic, settings.dead_letter_topic]
            )
        finally:
            await admin.close()

    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {settings.favorites_topic: 2, settings.dead_letter_topic: 2}
