"""Where a test run gets its Kafka from: one rule for the suite and its users.

In this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set: any running cluster;
2. testcontainers' Kafka module when a Docker engine answers (a Confluent
   ``cp-kafka`` image in KRaft mode; ``TESTCONTAINERS_KAFKA_IMAGE`` picks another);
3. the embedded broker (the pinned Apache Kafka jars and the local Java).

``RECIPE_PIPELINE_BROKER`` set to ``embedded`` or ``testcontainers`` forces one of
the last two. When none works, :class:`BrokerUnavailable` says what each way
needed, so a test run fails with the reason instead of skipping.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pipeline_core.broker.embedded import BrokerError, EmbeddedBroker
from pipeline_core.broker.jars import KafkaJarsError
from pipeline_core.settings import load_settings

logger = logging.getLogger(__name__)

#: The Confluent Platform image whose Kafka is 4.1 (cp 8.1 ships Apache Kafka 4.1).
DEFAULT_TESTCONTAINERS_IMAGE = "confluentinc/cp-kafka:8.1.0"
DOCKER_PING_TIMEOUT_S = 3

SourceName = Literal["environment", "testcontainers", "embedded"]


class BrokerUnavailable(RuntimeError):
    """No way of getting a Kafka broker worked; the message names each way."""


@dataclass
class BrokerLease:
    """A broker a test run may use until the lease ends.

    Attributes:
        bootstrap_servers: where clients connect.
        source: which of the three ways provided it.
        embedded: the broker object when it is the embedded one (restart scenarios
            need it); ``None`` otherwise.
    """

    bootstrap_servers: str
    source: SourceName
    embedded: EmbeddedBroker | None = None


def docker_answers() -> tuple[bool, str]:
    """Ask the local Docker engine for a ping; return (answered, why not)."""
    try:
        import docker  # type: ignore[import-untyped]
        from docker.errors import DockerException  # type: ignore[import-untyped]
    except ImportError:
        return False, "the docker package is not installed"
    try:
        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        return False, f"no Docker engine answered ({type(exc).__name__})"
    return True, ""


@contextmanager
def provide_broker() -> Iterator[BrokerLease]:
    """Lease a broker by the rule of this module; stop it afterwards if we started it.

    Raises:
        BrokerUnavailable: none of the three ways gave a broker.
    """
    settings = load_settings()
    if settings.kafka_bootstrap_servers:
        logger.info("using kafka from KAFKA_BOOTSTRAP_SERVERS")
        yield BrokerLease(settings.kafka_bootstrap_servers, "environment")
        return

    forced = os.environ.get("RECIPE_PIPELINE_BROKER", "").strip().lower()
    if forced not in {"", "embedded", "testcontainers"}:
        raise BrokerUnavailable(
            f"RECIPE_PIPELINE_BROKER={forced!r} is not understood; use 'embedded' or"
            " 'testcontainers', or leave it unset"
        )

    docker_reason = "skipped: RECIPE_PIPELINE_BROKER=embedded"
    if forced != "embedded":
        answered, docker_reason = docker_answers()
        if answered:
            with _testcontainers_broker() as lease:
                yield lease
            return
        if forced == "testcontainers":
            raise BrokerUnavailable(
                f"RECIPE_PIPELINE_BROKER=testcontainers, but {docker_reason}"
            )

    broker = EmbeddedBroker()
    try:
        asyncio.run(broker.start())
    except (BrokerError, KafkaJarsError) as exc:
        asyncio.run(broker.close())
        raise BrokerUnavailable(
            "no Kafka broker for this run. Tried, in order: 1) KAFKA_BOOTSTRAP_SERVERS"
            " (not set); 2) testcontainers' Kafka module"
            f" ({docker_reason}); 3) the embedded broker ({exc}). Set"
            " KAFKA_BOOTSTRAP_SERVERS to a running Kafka, start a Docker engine, or"
            " install Java 17+ and let the Kafka jars be fetched."
        ) from exc
    try:
        yield BrokerLease(broker.bootstrap_servers, "embedded", embedded=broker)
    finally:
        asyncio.run(broker.close())


@contextmanager
def _testcontainers_broker() -> Iterator[BrokerLease]:
    from testcontainers.community.kafka import KafkaContainer

    image = os.environ.get("TESTCONTAINERS_KAFKA_IMAGE", DEFAULT_TESTCONTAINERS_IMAGE)
    container: Any = KafkaContainer(image).with_kraft()
    logger.info("starting kafka in docker with testcontainers (%s)", image)
    with container:
        yield BrokerLease(container.get_bootstrap_server(), "testcontainers")
