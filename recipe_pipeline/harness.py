"""Drive the real pipeline and await each hop, with a report that names the hop.

:class:`PipelineUnderTest` is what the pytest plugin's ``pipeline`` fixture gives a
test: the addresses of a running backend, consumer, topic and database, calls that
send interactions through the API, and awaitables with timeouts (never sleeps):

- :meth:`~PipelineUnderTest.wait_favorite`
- :meth:`~PipelineUnderTest.wait_favorite_gone`
- :meth:`~PipelineUnderTest.wait_lag_zero`
- :meth:`~PipelineUnderTest.wait_record` (on the topic or its dead-letter topic)

When a wait runs out, it raises :class:`HopTimeout`, an ``AssertionError`` whose
message walks the hops (API acknowledgement, record on the topic, the group's
committed offset, the consumer process, the database rows) and names the first one
that did not happen.

It runs a stack of its own (:class:`HostedStack`, on a private event-loop thread, so
tests on any event loop can use it) or attaches to one the user already runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import SecretStr
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from pipeline_core.events import EventDecodeError, decode_event, header_value
from pipeline_core.lag import LagError, LagReader, LagSnapshot
from pipeline_core.stack.process import ComponentProcess
from pipeline_core.stack.stack import Stack, StackConfig
from pipeline_core.storage import AppliedEvent, Favorite, make_engine

T = TypeVar("T")

DEFAULT_WAIT_S = 30.0
POLL_INTERVAL_S = 0.05
HTTP_TIMEOUT_S = 15.0
REQUIRED_HEADERS = ("trace-id", "schema-version", "content-type")


class HopTimeout(AssertionError):
    """A wait ran out; the message says which hop the interaction stopped at."""


class NoControl(RuntimeError):
    """The pipeline was attached to, not started here, so it cannot be controlled."""


@dataclass(frozen=True)
class Ack:
    """The backend's 202 answer: where the broker stored the event."""

    event_id: str
    trace_id: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class PipelineAddresses:
    """Where a running pipeline's parts answer."""

    kafka_bootstrap: str
    backend_url: str
    database_url: str
    topic: str
    group: str
    api_token: SecretStr

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic that goes with :attr:`topic`."""
        return f"{self.topic}.dlq"


class HostedStack:
    """A :class:`Stack` run on an event loop in a thread of its own.

    Pytest fixtures of module scope cannot share the tests' function-scoped loops;
    this host owns the loop the stack's children and clients live on, and lets any
    other loop (or plain code) call into it with a bound.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pipeline-under-test", daemon=True
        )
        self.stack = Stack(config)

    def start(self) -> PipelineAddresses:
        """Start the thread and the stack (bounded by the config's timeouts)."""
        self._thread.start()
        bound = (
            self.config.broker_timeout
            + self.config.topic_timeout
            + 2 * self.config.component_timeout
        )
        self.call(self.stack.start(), timeout=bound)
        return PipelineAddresses(
            kafka_bootstrap=self.stack.kafka_bootstrap,
            backend_url=self.stack.backend_url,
            database_url=self.stack.database_url,
            topic=self.config.topic,
            group=self.config.group,
            api_token=self.stack.api_token,
        )

    def stop(self) -> None:
        """Stop the stack, then the loop and its thread."""
        if not self._thread.is_alive():
            return
        try:
            self.call(self.stack.stop(), timeout=4 * self.config.stop_timeout + 30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the host loop and wait for it (blocking)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=timeout)

    async def acall(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the host loop and await it from another loop."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


class PipelineUnderTest:
    """A running pipeline, driven and observed by a test.

    Args:
        addresses: where its parts answer.
        host: the stack this process started, if any; without one (attached to a
            user's stack) the control calls raise :class:`NoControl`.
    """

    def __init__(
        self, addresses: PipelineAddresses, *, host: HostedStack | None = None
    ) -> None:
        self.addresses = addresses
        self.host = host
        self._engine: Engine | None = None

    @property
    def topic(self) -> str:
        """The interactions topic."""
        return self.addresses.topic

    @property
    def backend_url(self) -> str:
        """The backend's base URL."""
        return self.addresses.backend_url

    def close(self) -> None:
        """Release the database engine (the fixture calls this)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- driving through the API ----------------------------------------------

    def http_client(self) -> httpx.AsyncClient:
        """An HTTP client for the backend with the bearer token (caller closes it)."""
        token = self.addresses.api_token.get_secret_value()
        return httpx.AsyncClient(
            base_url=self.backend_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT_S,
        )

    async def add_favorite(
        self,
        user_id: str,
        recipe_id: str,
        *,
        user_name: str = "tester",
        guild_id: str | None = None,
        trace_id: str | None = None,
    ) -> Ack:
        """POST one favourite; return the broker's acknowledgement."""
        body: dict[str, Any] = {
            "user_id": user_id,
            "user_name": user_name,
            "recipe_id": recipe_id,
        }
        if guild_id is not None:
            body["guild_id"] = guild_id
        headers = {"X-Trace-Id": trace_id} if trace_id else {}
        async with self.http_client() as client:
            response = await client.post("/v1/favorites", json=body, headers=headers)
        return _ack_from(response, "POST /v1/favorites")

    async def remove_favorite(self, user_id: str, recipe_id: str) -> Ack:
        """DELETE one favourite; return the broker's acknowledgement."""
        async with self.http_client() as client:
            response = await client.delete(f"/v1/favorites/{user_id}/{recipe_id}")
        return _ack_from(response, "DELETE /v1/favorites")

    async def listed_favorites(self, user_id: str) -> list[dict[str, Any]]:
        """The user's favourites as ``GET /v1/users/{id}/favorites`` lists them."""
        async with self.http_client() as client:
            response = await client.get(f"/v1/users/{user_id}/favorites")
        response.raise_for_status()
        data = response.json()
        items = data["favorites"] if isinstance(data, dict) else data
        return list(items)

    # -- reading the database -------------------------------------------------

    def _db(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.addresses.database_url)
        return self._engine

    def _favorite(self, user_id: str, recipe_id: str) -> Favorite | None:
        with Session(self._db()) as session:
            return session.get(Favorite, (user_id, recipe_id))

    async def stored_favorite(self, user_id: str, recipe_id: str) -> Favorite | None:
        """The stored row for (user, recipe), or ``None``."""
        return await asyncio.to_thread(self._favorite, user_id, recipe_id)

    async def applied_count(self, user_id: str, recipe_id: str) -> int:
        """How many events for (user, recipe) the consumer applied."""

        def count() -> int:
            with Session(self._db()) as session:
                statement = select(func.count()).where(
                    AppliedEvent.user_id == user_id,
                    AppliedEvent.recipe_id == recipe_id,
                )
                return int(session.exec(statement).one())

        return await asyncio.to_thread(count)

    async def applied_event(self, event_id: str) -> AppliedEvent | None:
        """The applied-events row for ``event_id``, or ``None``."""

        def read() -> AppliedEvent | None:
            with Session(self._db()) as session:
                return session.get(AppliedEvent, event_id)

        return await asyncio.to_thread(read)

    # -- awaitables -----------------------------------------------------------

    async def wait_favorite(
        self,
        user_id: str,
        recipe_id: str,
        *,
        ack: Ack | None = None,
        timeout: float = DEFAULT_WAIT_S,
    ) -> Favorite:
        """Wait until (user, recipe) is stored; with ``ack``, that very event.

        Raises:
            HopTimeout: not stored in time; the message names the hop.
        """

        async def found() -> Favorite | None:
            row = await self.stored_favorite(user_id, recipe_id)
            if row is not None and (ack is None or row.event_id == ack.event_id):
                return row
            return None

        row = await _poll(found, timeout)
        if row is None:
            report = await self.diagnose(user_id, recipe_id, ack=ack)
            raise HopTimeout(
                f"favourite ({user_id}, {recipe_id}) not stored within {timeout:g}s: "
                + report
            )
        return row

    async def wait_favorite_gone(
        self,
        user_id: str,
        recipe_id: str,
        *,
        ack: Ack | None = None,
        timeout: float = DEFAULT_WAIT_S,
    ) -> None:
        """Wait until (user, recipe) has no stored row.

        Raises:
            HopTimeout: still stored when the time ran out; the message names the hop.
        """

        async def gone() -> bool | None:
            return (
                True if await self.stored_favorite(user_id, recipe_id) is None else None
            )

        if await _poll(gone, timeout) is None:
            report = await self.diagnose(user_id, recipe_id, ack=ack)
            raise HopTimeout(
                f"favourite ({user_id}, {recipe_id}) still stored after {timeout:g}s: "
                + report
            )

    async def wait_lag_zero(self, *, timeout: float = DEFAULT_WAIT_S) -> LagSnapshot:
        """Wait until the consumer group has committed everything on the topic.

        Raises:
            HopTimeout: lag still above 0; the message gives it per partition.
        """
        last: LagSnapshot | None = None
        last_error = ""
        async with LagReader(self.addresses.kafka_bootstrap) as reader:

            async def caught_up() -> LagSnapshot | None:
                nonlocal last, last_error
                try:
                    last = await reader.read(self.addresses.group, self.topic)
                except LagError as exc:
                    last_error = str(exc)
                    return None
                return last if last.total == 0 else None

            snapshot = await _poll(caught_up, timeout, interval=0.25)
        if snapshot is not None:
            return snapshot
        detail = (
            ", ".join(
                f"partition {p.partition}: committed {p.committed}, end {p.end_offset}"
                for p in last.partitions
            )
            if last is not None
            else last_error
        )
        raise HopTimeout(
            f"consumer hop: group {self.addresses.group} still lags on {self.topic}"
            f" after {timeout:g}s ({detail}); consumer: {self._consumer_state()}"
        )

    async def wait_record(
        self,
        predicate: Callable[[ConsumerRecord[bytes, bytes]], bool],
        *,
        dead_letters: bool = False,
        timeout: float = DEFAULT_WAIT_S,
    ) -> ConsumerRecord[bytes, bytes]:
        """Wait for a record matching ``predicate`` on the topic (or its .dlq).

        Reads from the beginning with a consumer of no group, so records produced
        before the call count too.

        Raises:
            HopTimeout: no record matched; the message says how many were seen.
        """
        topic = self.addresses.dead_letter_topic if dead_letters else self.topic
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.addresses.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen = 0
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        seen += 1
                        if predicate(record):
                            return record
        finally:
            await consumer.stop()
        raise HopTimeout(
            f"topic hop: no record on {topic} matched within {timeout:g}s"
            f" ({seen} records read)"
        )

    # -- diagnosis ------------------------------------------------------------

    async def diagnose(
        self, user_id: str, recipe_id: str, *, ack: Ack | None = None
    ) -> str:
        """Walk every hop for (user, recipe) and name the first one that stopped."""
        facts: list[str] = []
        if ack is None:
            facts.append("no API acknowledgement was recorded by the test")
        else:
            facts.append(
                f"API acknowledged event {ack.event_id} at {ack.topic}"
                f" partition {ack.partition} offset {ack.offset}"
            )
            if ack.topic != self.topic:
                return _verdict(
                    facts,
                    "topic",
                    f"the API published to {ack.topic!r} but the consumer reads"
                    f" {self.topic!r}",
                )
            record_problem = await self._record_problem(ack)
            if record_problem:
                return _verdict(facts, "topic", record_problem)
            facts.append("the record is on the topic with its headers")
            committed = await self._committed(ack.partition)
            facts.append(
                f"group {self.addresses.group} committed {committed} on partition"
                f" {ack.partition}"
            )
            if committed is None or committed <= ack.offset:
                return _verdict(
                    facts,
                    "consumer",
                    f"the consumer has not committed past offset {ack.offset}"
                    f" (consumer: {self._consumer_state()})",
                )
            if await self.applied_event(ack.event_id) is None:
                return _verdict(
                    facts,
                    "database",
                    f"offset committed but no applied-event row for {ack.event_id}",
                )
        row = await self.stored_favorite(user_id, recipe_id)
        applied = await self.applied_count(user_id, recipe_id)
        facts.append(f"{applied} applied event(s) for ({user_id}, {recipe_id})")
        if row is None:
            return _verdict(
                facts, "database", f"no favourites row for ({user_id}, {recipe_id})"
            )
        return _verdict(
            facts,
            "database",
            f"favourites row for ({user_id}, {recipe_id}) holds event {row.event_id}",
        )

    async def _record_problem(self, ack: Ack) -> str | None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.addresses.kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partition = TopicPartition(ack.topic, ack.partition)
            consumer.assign([partition])
            consumer.seek(partition, ack.offset)
            batches = await consumer.getmany(partition, timeout_ms=3000)
        finally:
            await consumer.stop()
        records = [r for r in batches.get(partition, []) if r.offset == ack.offset]
        if not records:
            return f"no record at partition {ack.partition} offset {ack.offset}"
        record = records[0]
        missing = [
            h for h in REQUIRED_HEADERS if header_value(record.headers, h) is None
        ]
        if missing:
            return f"the record lacks the header(s) {', '.join(missing)}"
        try:
            event = decode_event(record.value)
        except EventDecodeError as exc:
            return f"the record is not a valid event: {exc}"
        if str(event.event_id) != ack.event_id:
            return f"the record holds event {event.event_id}, not {ack.event_id}"
        return None

    async def _committed(self, partition: int) -> int | None:
        try:
            async with LagReader(self.addresses.kafka_bootstrap) as reader:
                snapshot = await reader.read(self.addresses.group, self.topic)
        except LagError:
            return None
        for part in snapshot.partitions:
            if part.partition == partition:
                return part.committed
        return None

    def _consumer_state(self) -> str:
        if self.host is None:
            return "not controlled by this test run"
        consumer = self.host.stack.components.get("consumer")
        if consumer is None:
            return "never started"
        return f"{consumer.state} (pid {consumer.pid})"

    # -- control (only for a stack this run started) ---------------------------

    def _component(self, name: str) -> tuple[HostedStack, ComponentProcess]:
        if self.host is None:
            raise NoControl(
                f"the {name} of an attached pipeline belongs to its owner; this test"
                " needs a pipeline the plugin starts itself"
            )
        return self.host, self.host.stack.components[name]

    async def kill_consumer(self) -> None:
        """SIGKILL the consumer process (as a crash would)."""
        host, consumer = self._component("consumer")
        await host.acall(consumer.kill(), timeout=15)

    async def stop_consumer(self) -> None:
        """Stop the consumer cleanly (SIGTERM)."""
        host, consumer = self._component("consumer")
        await host.acall(consumer.stop(host.config.stop_timeout), timeout=60)

    async def start_consumer(self) -> None:
        """Start the consumer again after a stop or kill."""
        host, consumer = self._component("consumer")
        timeout = host.config.component_timeout
        await host.acall(consumer.restart(timeout), timeout=timeout + 30)


def _verdict(facts: list[str], hop: str, problem: str) -> str:
    return f"stopped at the {hop} hop: {problem}. Seen: " + "; ".join(facts) + "."


def _ack_from(response: httpx.Response, call: str) -> Ack:
    if response.status_code != 202:
        raise HopTimeout(
            f"API hop: {call} answered {response.status_code}: {response.text[:300]}"
        )
    body = response.json()
    return Ack(
        event_id=str(body["event_id"]),
        trace_id=str(body["trace_id"]),
        topic=str(body["topic"]),
        partition=int(body["partition"]),
        offset=int(body["offset"]),
    )


async def _poll(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float,
    *,
    interval: float = POLL_INTERVAL_S,
) -> T | None:
    """Call ``probe`` until it returns something, or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(interval)
