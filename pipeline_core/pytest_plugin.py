"""The recipe-pipeline pytest plugin: a real Kafka broker and pipeline fixtures.

Installed with the package (entry point ``pytest11``), so any suite in the same
environment can ask for these fixtures:

``kafka_broker`` (session)
    A :class:`~pipeline_core.broker.source.BrokerLease`: ``KAFKA_BOOTSTRAP_SERVERS``
    if set, else testcontainers' Kafka where a Docker engine answers, else the
    embedded broker. When none works the test fails with a message naming the three
    ways; it never skips.
``kafka_bootstrap`` (session)
    The lease's bootstrap address, ``host:port``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipeline_core.broker.source import BrokerLease


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerLease]:
    """A real Kafka broker for the whole test session."""
    from pipeline_core.broker.source import BrokerUnavailable, provide_broker

    try:
        lease_context = provide_broker()
        lease = lease_context.__enter__()
    except BrokerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield lease
    finally:
        lease_context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: BrokerLease) -> str:
    """The bootstrap address of the session's Kafka broker."""
    return kafka_broker.bootstrap_servers
