"""The stack on a real broker: topics, start order, clean failure and stop."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline_core.settings import load_settings
from pipeline_core.stack import ComponentState, Stack, StackConfig, StackError
from pipeline_core.stack.stack import absolute_sqlite_url
from pipeline_core.stack.topics import TopicSetupError, ensure_topics

pytestmark = pytest.mark.slow


async def partitions_of(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {entry["topic"]: len(entry["partitions"]) for entry in described}


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A 127.0.0.1 server of ours that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"127.0.0.1:{server.getsockname()[1]}"


async def test_ensure_topics_creates_the_topic_and_its_dead_letter_topic(
    kafka_bootstrap: str,
) -> None:
    """Both topics are created with the partitions asked for."""
    topic = f"stack-{uuid.uuid4().hex[:8]}"

    await ensure_topics(
        kafka_bootstrap, [topic, f"{topic}.dlq"], partitions=3, timeout=30
    )

    found = await partitions_of(kafka_bootstrap, [topic, f"{topic}.dlq"])
    assert found == {topic: 3, f"{topic}.dlq": 3}


async def test_ensure_topics_keeps_a_topic_that_exists(kafka_bootstrap: str) -> None:
    """A second call with other partitions changes nothing and does not fail."""
    topic = f"stack-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=2, timeout=30)

    await ensure_topics(kafka_bootstrap, [topic], partitions=5, timeout=30)

    assert await partitions_of(kafka_bootstrap, [topic]) == {topic: 2}


async def test_ensure_topics_reports_a_broker_that_does_not_answer(
    silent_server: str,
) -> None:
    """A server that never speaks Kafka gives a bounded, named error."""
    with pytest.raises(TopicSetupError, match=r"did not answer|failed"):
        await ensure_topics(silent_server, ["anything"], partitions=1, timeout=2)


def test_config_from_settings_follows_the_environment(tmp_path: Path) -> None:
    """StackConfig takes topic, group, database, token and bootstrap from settings."""
    settings = load_settings(
        favorites_topic="t1",
        consumer_group="g1",
        database_url="sqlite:///x.db",
        kafka_bootstrap_servers="127.0.0.1:19092",
        favorites_topic_partitions=4,
    )

    config = StackConfig.from_settings(settings, tmp_path)

    assert (config.topic, config.group, config.database_url) == (
        "t1",
        "g1",
        "sqlite:///x.db",
    )
    assert config.bootstrap == "127.0.0.1:19092"
    assert config.partitions == 4
    assert config.dead_letter_topic == "t1.dlq"


def test_generated_api_token_never_shows_in_reprs(tmp_path: Path) -> None:
    """Without API_TOKEN the stack makes a random token that reprs hide."""
    stack = Stack(StackConfig(data_dir=tmp_path))

    secret = stack.api_token.get_secret_value()

    assert len(secret) >= 32
    assert secret not in repr(stack.api_token)
    assert secret not in repr(stack.config)


async def test_a_component_that_fails_stops_the_whole_stack(tmp_path: Path) -> None:
    """When the backend cannot start, the error names it and the embedded broker
    that had started is stopped again."""
    broker_pids: list[int] = []
    config = StackConfig(
        data_dir=tmp_path,
        topic=f"stack-{uuid.uuid4().hex[:8]}",
        component_timeout=0.01,
        base_env=dict(os.environ),
    )
    stack = Stack(
        config,
        on_progress=lambda step: (
            broker_pids.append(stack.broker.pid)
            if step.startswith("starting the backend") and stack.broker
            else None
        ),
    )

    with pytest.raises(StackError, match="backend"):
        await stack.start()

    assert len(broker_pids) == 1
    assert not psutil.pid_exists(broker_pids[0])
    assert stack.backend.state is ComponentState.FAILED
    assert not stack.backend.is_alive


def test_relative_sqlite_urls_become_absolute(tmp_path: Path) -> None:
    """A relative SQLite path is resolved; absolute and other URLs stay as given."""
    assert absolute_sqlite_url("sqlite:///data/f.db") == (
        f"sqlite:///{Path('data/f.db').resolve()}"
    )
    assert (
        absolute_sqlite_url(f"sqlite:///{tmp_path}/f.db")
        == f"sqlite:///{tmp_path}/f.db"
    )
    assert absolute_sqlite_url("sqlite:///:memory:") == "sqlite:///:memory:"
    assert absolute_sqlite_url("postgresql://h/db") == "postgresql://h/db"
