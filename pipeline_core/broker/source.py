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
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

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
    """Ping the Docker engine ``DOCKER_HOST`` names (default: the local socket).

    Returns:
        ``(True, "")`` when it answered ``/_ping``, else ``(False, why not)``.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            path = host.removeprefix("unix://")
            if not Path(path).exists():
                return False, f"no Docker socket at {path}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(DOCKER_PING_TIMEOUT_S)
                sock.connect(path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = sock.recv(64)
            answered = answer.startswith(b"HTTP/") and b" 200 " in answer
        elif host.startswith("tcp://"):
            url = "http://" + host.removeprefix("tcp://").rstrip("/") + "/_ping"
            answered = httpx.get(url, timeout=DOCKER_PING_TIMEOUT_S).status_code == 200
        else:
            return False, f"DOCKER_HOST={host!r} is not a unix:// or tcp:// address"
    except (OSError, httpx.HTTPError) as exc:
        return False, f"no Docker engine answered at {host} ({type(exc).__name__})"
    return (True, "") if answered else (False, f"the engine at {host} did not answer")


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
