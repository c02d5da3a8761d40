"""Fixtures for the backend tests: a real broker, a real SQLite file, the real app.

Every test gets its own topic (uuid suffix) and its own database file, so tests never
see each other's records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from backend.app import create_app
from pipeline_core.settings import Settings, load_settings

API_TOKEN = "test-token-6b1f0c2e9a7d4e58"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
#: Bound on waiting for records to show up on a topic.
RECORD_WAIT_S = 30.0
#: Partitions of every test topic (the settings' default).
PARTITIONS = 3


def unique_topic(prefix: str = "favorites-test") -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def backend_settings(tmp_path: Path, kafka_bootstrap: str) -> Settings:
    """Settings for one test: the session broker, a fresh topic and database."""
    return load_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        favorites_topic=unique_topic(),
        database_url=f"sqlite:///{tmp_path / 'favorites.db'}",
        api_token=API_TOKEN,
        publish_timeout_seconds=5.0,
    )


@asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield a client that calls it through ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://backend.test"
        ) as client:
            yield client


@pytest.fixture
async def client(backend_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a running app (real producer, real SQLite), called via ASGI."""
    async with serve_in_process(create_app(backend_settings)) as http:
        yield http


async def read_records(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = RECORD_WAIT_S,
    partitions_count: int = PARTITIONS,
) -> list[Any]:
    """Read the topic from the start until ``expected`` records came (bounded).

    Then read on briefly up to the end offsets, so that extra records are seen too.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partitions_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        total_end = sum(end.values())
        records: list[Any] = []
        async with asyncio.timeout(timeout):
            while len(records) < max(expected, total_end):
                batch = await consumer.getmany(timeout_ms=500)
                for part_records in batch.values():
                    records.extend(part_records)
                if len(records) < expected:
                    end = await consumer.end_offsets(partitions)
                    total_end = sum(end.values())
        return records
    finally:
        await consumer.stop()


async def end_offsets(
    bootstrap: str, topic: str, partitions_count: int = PARTITIONS
) -> dict[int, int]:
    """The end offset of each partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partitions_count)]
        offsets = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


def favorite_body(**changes: Any) -> dict[str, Any]:
    """A valid ``POST /v1/favorites`` body, with ``changes`` applied."""
    body: dict[str, Any] = {
        "user_id": "123456789012345678",
        "user_name": "Ada",
        "recipe_id": "8",
    }
    body.update(changes)
    return body
