"""Publishing favourite events to Kafka: one idempotent producer, bounded waits.

:class:`FavoritePublisher` owns the app's single ``AIOKafkaProducer`` (``acks=all``,
idempotent). A publish returns only once the broker acknowledged the record; when
that does not happen within the publish deadline it raises
:class:`PublishUnavailable` and the caller answers ``503``. A record whose publish
timed out may still reach the topic later (the producer keeps retrying it until its
request timeout): a ``503`` means "not known to be stored", and the client retries
with a new event id; the consumer's per-event idempotence keeps this harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from backend.metrics import BackendMetrics
from pipeline_core.events import FavoriteEvent, encode_event

logger = logging.getLogger(__name__)

#: Kafka's error code for "topic already exists" in a CreateTopics response.
_TOPIC_ALREADY_EXISTS = 36


class PublishUnavailable(Exception):
    """The broker did not acknowledge a record within the publish deadline."""


class PublisherStartError(RuntimeError):
    """The producer or the topics could not be set up; the message says why."""


@dataclass(frozen=True)
class Acknowledgement:
    """Where the broker stored an acknowledged record."""

    topic: str
    partition: int
    offset: int


class FavoritePublisher:
    """The app's one Kafka producer, with topic setup and bounded publishes.

    Use ``start`` once and ``stop`` once; ``stop`` flushes what was sent and gives
    up after ``stop_timeout`` seconds (records not yet acknowledged by then were
    never answered with ``202``).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        dead_letter_topic: str,
        partitions: int,
        publish_timeout: float,
        metrics: BackendMetrics,
        start_timeout: float = 30.0,
    ) -> None:
        """Prepare the publisher; nothing connects until :meth:`start`."""
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.publish_timeout = publish_timeout
        self.stop_timeout = publish_timeout + 5.0
        self._bootstrap_servers = bootstrap_servers
        self._partitions = partitions
        self._metrics = metrics
        self._start_timeout = start_timeout
        self._producer: Any = None

    async def start(self) -> None:
        """Create the topics if needed, then start the producer (both bounded).

        Raises:
            PublisherStartError: Kafka did not answer within the start timeout or
                refused the topics; the message names the bootstrap servers.
        """
        if self._producer is not None:
            raise PublisherStartError("the publisher is already started")
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._ensure_topics()
                await self._start_producer()
        except (TimeoutError, KafkaError, OSError) as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else repr(exc)
            raise PublisherStartError(
                f"Kafka at {self._bootstrap_servers} could not be set up within"
                f" {self._start_timeout:g}s ({reason}); check that the broker runs"
                " and KAFKA_BOOTSTRAP_SERVERS points at it"
            ) from None

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap_servers, client_id="recipe-backend-admin"
        )
        await admin.start()
        try:
            response = await admin.create_topics(
                [
                    NewTopic(self.topic, self._partitions, 1),
                    NewTopic(self.dead_letter_topic, self._partitions, 1),
                ]
            )
        finally:
            await admin.close()
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code == 0:
                logger.info("topic created: %s", name)
            elif code == _TOPIC_ALREADY_EXISTS:
                logger.info("topic already exists: %s", name)
            else:
                message = topic_error[2] if len(topic_error) > 2 else ""
                raise PublisherStartError(
                    f"Kafka refused to create topic {name}: error {code} {message}"
                )

    async def _start_producer(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id="recipe-backend",
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(max(self.publish_timeout, 1.0) * 1000) + 1000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        logger.info("producer started: bootstrap=%s", self._bootstrap_servers)

    async def publish(self, event: FavoriteEvent) -> Acknowledgement:
        """Send ``event`` and wait for the broker's acknowledgement.

        Raises:
            PublishUnavailable: no acknowledgement within ``publish_timeout``, the
                broker refused the record, or the publisher is not running.
        """
        if self._producer is None:
            raise PublishUnavailable("the Kafka producer is not running")
        key, value, headers = encode_event(event)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.publish_timeout):
                delivery = await self._producer.send(
                    self.topic, value=value, key=key, headers=headers
                )
                metadata = await asyncio.shield(delivery)
        except TimeoutError:
            self._metrics.publish_failures.labels(reason="timeout").inc()
            logger.warning(
                "publish not acknowledged within %gs: topic=%s event_id=%s trace_id=%s",
                self.publish_timeout,
                self.topic,
                event.event_id,
                event.trace_id,
            )
            raise PublishUnavailable(
                f"Kafka did not acknowledge within {self.publish_timeout:g}s"
            ) from None
        except KafkaError as exc:
            self._metrics.publish_failures.labels(reason=type(exc).__name__).inc()
            logger.warning(
                "publish refused: topic=%s event_id=%s trace_id=%s error=%r",
                self.topic,
                event.event_id,
                event.trace_id,
                exc,
            )
            raise PublishUnavailable(f"Kafka refused the record ({exc!r})") from None
        self._metrics.publish_seconds.observe(time.perf_counter() - started)
        logger.debug(
            "published: topic=%s partition=%s offset=%s event_id=%s trace_id=%s",
            metadata.topic,
            metadata.partition,
            metadata.offset,
            event.event_id,
            event.trace_id,
        )
        return Acknowledgement(metadata.topic, metadata.partition, metadata.offset)

    async def check(self, timeout: float) -> None:
        """Ask the broker for fresh cluster metadata, to prove it answers.

        Raises:
            PublishUnavailable: the producer is not running or the broker did not
                answer within ``timeout`` seconds.
        """
        if self._producer is None:
            raise PublishUnavailable("the Kafka producer is not running")
        try:
            async with asyncio.timeout(timeout):
                updated = await self._producer.client.force_metadata_update()
        except (TimeoutError, KafkaError) as exc:
            reason = "no answer" if isinstance(exc, TimeoutError) else repr(exc)
            raise PublishUnavailable(f"Kafka did not answer ({reason})") from None
        if not updated:
            raise PublishUnavailable("no Kafka broker answered a metadata request")

    async def stop(self) -> None:
        """Flush sent records and close the producer, within ``stop_timeout``."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(self.stop_timeout):
                await producer.stop()
        except TimeoutError:
            logger.error(
                "producer did not flush within %gs; records not yet acknowledged"
                " (never answered 202) are dropped",
                self.stop_timeout,
            )
        else:
            logger.info("producer stopped and flushed: topic=%s", self.topic)
