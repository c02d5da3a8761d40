"""The storing consumer's loop: poll a batch, dead-letter, apply, commit.

Each batch goes through these steps, in this order:

1. ``getmany`` returns up to ``max_records`` records of the partitions this member
   owns;
2. each record is decoded; the ones that do not decode are produced to
   ``<topic>.dlq`` with :data:`pipeline_core.events.DLQ_HEADERS` and the
   producer's acknowledgement is awaited;
3. the decoded events are applied in one database transaction, in a worker thread
   (:class:`consumer.store.FavoriteStore`);
4. the offsets after the batch are committed, only for partitions still assigned.

Steps 2 and 3 of one batch run as one task while the loop fetches and decodes the
next batch (steps 1 and 2's decoding), so the database write overlaps the Kafka
fetch. At most one batch is in flight: the next one starts its steps 2 and 3 only
after the previous one's transaction has committed, so batches are applied in topic
order, and a failed batch stops the loop before any later batch is applied.

Step 4 runs apart (:class:`_OffsetCommitter`): the offsets of an applied batch are
handed to it and it commits them, one request at a time, merging those that arrive
meanwhile (a partition's offsets only grow, since batches are applied in order). The
next batch's transaction therefore does not wait for the broker's answer to the
previous commit (a round trip of 5 to 10 ms on the group coordinator, which at a few
hundred events per second was most of the time from a record's append to its
storage); offsets are still committed only after their transaction, in order. The
rebalance listener and the shutdown wait until every applied offset is committed.

A crash between 3 and 4 redelivers the batch; its events are then found in the
applied-event table and counted as duplicates, so the effect stays exactly once.
A crash between 2 and 4 may dead-letter a bad record twice (the dead-letter topic is
at-least-once). On revocation the rebalance listener waits for the batch in flight,
which commits before the partitions go; a commit the group refuses because it moved
on is logged, and the records it covered come back to the new owner as duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from consumer.metrics import ConsumerMetrics
from consumer.store import BatchResult, FavoriteStore, StoredRecord
from pipeline_core.events import (
    DLQ_ERROR,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    EventDecodeError,
    decode_event,
)

logger = logging.getLogger(__name__)

#: Bounds on waiting for the broker.
START_TIMEOUT_S = 30.0
COMMIT_TIMEOUT_S = 15.0
DLQ_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0  # default stop budget, see StoringConsumer.run
PRUNE_INTERVAL_S = 3600.0

#: Records per batch and database transaction: larger batches cost fewer commits
#: and fewer rewrites of the same index pages.
DEFAULT_BATCH_RECORDS = 10_000
#: Bytes fetched per partition per request (aiokafka's default: 1 MiB, about 3,500
#: events): fewer round trips while a backlog drains; the memory this buffers is
#: bounded by it times the partitions owned.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024


class ConsumerError(RuntimeError):
    """The consumer could not start or had to stop; the message says why."""


@dataclass
class ConsumerOptions:
    """Where the consumer reads and how much at a time."""

    bootstrap: str
    topic: str
    group: str
    max_records: int = DEFAULT_BATCH_RECORDS
    poll_timeout_ms: int = 500
    client_id: str = "recipe-pipeline-consumer"
    extra_consumer_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dead_letter_topic(self) -> str:
        """``<topic>.dlq``."""
        return f"{self.topic}.dlq"


class _OffsetCommitter:
    """Commits the offsets of applied batches in the background, in order.

    :meth:`add` takes the offsets after a batch whose transaction has committed; one
    task commits them, one request at a time, and offsets added while a request is
    out are merged and go in the next one. What waits is bounded by the partitions
    owned (one offset each) and the batches applied during one commit request.
    ``on_committed`` gets the arrival times of the batches a commit covered, unless
    the commit was refused (``commit`` returned nothing).
    """

    def __init__(
        self,
        commit: Callable[[dict[Any, int]], Coroutine[Any, Any, dict[Any, int]]],
        on_committed: Callable[[list[float]], None],
    ) -> None:
        self._commit = commit
        self._on_committed = on_committed
        self._pending: dict[Any, int] = {}
        self._started: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._unconfirmed: dict[Any, int] = {}

    def add(self, offsets: Mapping[Any, int], started: float) -> None:
        """Commit ``offsets`` (of a batch that arrived at ``started``) soon."""
        self._pending.update(offsets)
        self._unconfirmed.update(offsets)
        self._started.append(started)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until every offset added so far has been committed or refused."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._pending or self._started:
            offsets, self._pending = self._pending, {}
            started, self._started = self._started, []
            committed = await self._commit(offsets) if offsets else {}
            for tp, offset in committed.items():
                if tp in self._unconfirmed and self._unconfirmed[tp] <= offset:
                    del self._unconfirmed[tp]
            if committed or not offsets:
                self._on_committed(started)

    def uncommitted(self) -> dict[Any, int]:
        """Offsets of applied batches whose commit has not been confirmed."""
        return dict(self._unconfirmed)

    async def abandon(self) -> None:
        """Stop committing (the broker did not answer in time); nothing is lost:
        what was not committed is redelivered and absorbed as duplicates."""
        task, self._task = self._task, None
        self._pending.clear()
        self._started.clear()
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, batch_lock: asyncio.Lock, committer: _OffsetCommitter) -> None:
        self._batch_lock = batch_lock
        self._committer = committer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Wait for the batch in flight and for the commit of every applied offset
        # before the partitions go.
        async with self._batch_lock:
            await self._committer.flush()
            logger.info(
                "partitions revoked: %s", sorted(tp.partition for tp in revoked)
            )

    async def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class _BatchInFlight:
    """The one batch whose dead letters, transaction and commit run in the background.

    Holds at most one task: :meth:`start` refuses a second before :meth:`finish`.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        if self._task is not None:
            work.close()
            raise RuntimeError("a batch is already in flight; did you call finish?")
        self._task = asyncio.create_task(work)

    async def finish(self) -> None:
        """Wait for the batch in flight, if any; raise what it raised."""
        task, self._task = self._task, None
        if task is not None:
            await task

    async def abandon(self) -> None:
        """Stop waiting for the batch in flight and cancel it."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    def raise_if_failed(self) -> None:
        """Raise the error of a batch that already ended with one."""
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            task.result()


class StoringConsumer:
    """Reads the favourites topic and stores every event once in effect."""

    def __init__(
        self,
        options: ConsumerOptions,
        store: FavoriteStore,
        metrics: ConsumerMetrics,
    ) -> None:
        self._options = options
        self._store = store
        self._metrics = metrics
        self._batch_lock = asyncio.Lock()
        self._last_prune = 0.0

    async def run(
        self,
        stop: asyncio.Event,
        on_ready: Callable[[], None] | None = None,
        *,
        stop_timeout: float = STOP_TIMEOUT_S,
    ) -> None:
        """Consume until ``stop`` is set, then leave the group.

        ``on_ready`` is called once, after the first poll returned (the member has
        joined its group and the broker answers).

        The stop takes at most about ``stop_timeout`` seconds from ``stop`` being
        set: half of it for the batch in flight and the commit of every applied
        offset, the rest for closing both clients (leaving the group). Whatever
        the broker does not answer in time is given up, never a transaction: the
        offsets not committed are named in one warning and their records come back
        on restart as duplicates. Both clients are closed in every case.

        Raises:
            ConsumerError: the broker could not be reached at start.
            consumer.store.DatabaseUnavailable: the database stayed unavailable
                through every retry; the batch's offsets were not committed.
        """
        opts = self._options
        consumer = AIOKafkaConsumer(
            bootstrap_servers=opts.bootstrap,
            group_id=opts.group,
            client_id=opts.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **{
                "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
                **opts.extra_consumer_config,
            },
        )
        committer = _OffsetCommitter(
            lambda offsets: self._commit(consumer, offsets), self._observe_committed
        )
        consumer.subscribe(
            [opts.topic], listener=_Revocations(self._batch_lock, committer)
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=opts.bootstrap, client_id=opts.client_id, acks="all"
        )
        loop = asyncio.get_running_loop()
        shutdown = _Shutdown(opts.bootstrap)
        # The stop's clock starts when it is asked for, not when the loop notices.
        clock = asyncio.create_task(_begin_on(stop, shutdown, stop_timeout))
        try:
            await self._start(consumer, producer)
            await self._loop(
                consumer, producer, committer, stop, on_ready, stop_timeout, shutdown
            )
        finally:
            clock.cancel()
            deadline = shutdown.deadline or loop.time() + stop_timeout
            flush_by = deadline - stop_timeout / 2
            try:
                async with asyncio.timeout_at(flush_by):
                    await committer.flush()
            except TimeoutError:
                shutdown.unanswered("committing offsets")
                await committer.abandon()
            if not shutdown.any_unanswered:
                await _probe(consumer, flush_by, min(1.0, stop_timeout / 10), shutdown)
            await _close_clients(
                consumer, producer, deadline, min(1.0, stop_timeout / 5), shutdown
            )
            shutdown.report(committer.uncommitted())
            shutdown.end()

    async def _start(self, consumer: Any, producer: Any) -> None:
        opts = self._options
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await producer.start()
                await consumer.start()
        except (TimeoutError, KafkaError) as exc:
            raise ConsumerError(
                f"could not connect to Kafka at {opts.bootstrap} within "
                f"{START_TIMEOUT_S:g} s ({exc or type(exc).__name__}); check "
                "KAFKA_BOOTSTRAP_SERVERS and that the broker runs"
            ) from exc
        logger.info(
            "consumer started: group %s, topic %s, dead letters to %s",
            opts.group,
            opts.topic,
            opts.dead_letter_topic,
        )

    async def _loop(
        self,
        consumer: Any,
        producer: Any,
        committer: _OffsetCommitter,
        stop: asyncio.Event,
        on_ready: Callable[[], None] | None,
        stop_timeout: float,
        shutdown: _Shutdown,
    ) -> None:
        opts = self._options
        ready = False
        in_flight = _BatchInFlight()
        try:
            while not stop.is_set():
                in_flight.raise_if_failed()
                batch = await consumer.getmany(
                    timeout_ms=opts.poll_timeout_ms, max_records=opts.max_records
                )
                if not ready:
                    ready = True
                    if on_ready is not None:
                        on_ready()
                if batch:
                    started = time.perf_counter()
                    good, bad = _decode(batch)
                    await in_flight.finish()
                    in_flight.start(
                        self._handle(producer, committer, batch, good, bad, started)
                    )
                if self._prune_due():
                    await in_flight.finish()
                    await self._prune()
        finally:
            shutdown.begin(stop_timeout)
            try:
                async with asyncio.timeout_at(shutdown.flush_by):
                    await in_flight.finish()
            except TimeoutError:
                # Only the broker can hold a batch this long (its dead letters'
                # acknowledgement); its transaction has not run or its offsets
                # are simply not committed.
                shutdown.unanswered("acknowledging dead letters")
                await in_flight.abandon()

    async def _handle(
        self,
        producer: Any,
        committer: _OffsetCommitter,
        batch: Mapping[Any, Sequence[Any]],
        good: list[StoredRecord],
        bad: list[tuple[Any, str]],
        started: float,
    ) -> None:
        async with self._batch_lock:
            await self._dead_letter(producer, bad)
            result = await asyncio.to_thread(self._store.apply_batch, good)
            # Only now, after the transaction: the offsets may be committed.
            committer.add(_offsets_after(batch), started)

        self._metrics.applied.inc(result.applied)
        self._metrics.duplicates.inc(result.duplicates)
        self._metrics.dead_lettered.inc(len(bad))
        _log_batch(batch, result, len(bad))
        if logger.isEnabledFor(logging.DEBUG):
            for record in good:
                logger.debug(
                    "event %s trace %s from partition %d offset %d: %s",
                    record.event.event_id,
                    record.event.trace_id,
                    record.partition,
                    record.offset,
                    record.event.type.value,
                )

    def _observe_committed(self, started: list[float]) -> None:
        now = time.perf_counter()
        for moment in started:
            self._metrics.batch_seconds.observe(now - moment)

    async def _dead_letter(self, producer: Any, bad: Sequence[tuple[Any, str]]) -> None:
        if not bad:
            return
        topic = self._options.dead_letter_topic
        futures = []
        for record, error in bad:
            headers = [*(record.headers or ()), *_dlq_headers(record, error)]
            futures.append(
                await producer.send(
                    topic, value=record.value, key=record.key, headers=headers
                )
            )
        try:
            async with asyncio.timeout(DLQ_TIMEOUT_S):
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError) as exc:
            raise ConsumerError(
                f"the broker did not acknowledge {len(bad)} dead letter(s) to {topic} "
                f"({exc or type(exc).__name__}); offsets were not committed, so the "
                "records will be read again on restart"
            ) from exc
        for record, error in bad:
            logger.warning(
                "dead-lettered record from %s partition %d offset %d: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )

    async def _commit(self, consumer: Any, offsets: dict[Any, int]) -> dict[Any, int]:
        owned = consumer.assignment()
        lost = [tp.partition for tp in offsets if tp not in owned]
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if lost:
            logger.info(
                "not committing partitions %s: no longer assigned; the new owner "
                "absorbs the redelivered records",
                sorted(lost),
            )
        if not offsets:
            return {}
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_S):
                await consumer.commit(offsets)
        except (CommitFailedError, TimeoutError, KafkaError) as exc:
            logger.warning(
                "offset commit failed (%s); the applied records will be redelivered "
                "and counted as duplicates",
                exc or type(exc).__name__,
            )
            return {}
        for tp, offset in offsets.items():
            self._metrics.committed_offset.labels(tp.topic, str(tp.partition)).set(
                offset
            )
        return offsets

    def _prune_due(self) -> bool:
        now = time.monotonic()
        return not self._last_prune or now - self._last_prune >= PRUNE_INTERVAL_S

    async def _prune(self) -> None:
        self._last_prune = time.monotonic()
        pruned = await asyncio.to_thread(self._store.prune)
        if pruned:
            logger.info("pruned %d applied-event ids past their retention", pruned)


def _decode(
    batch: Mapping[Any, Sequence[Any]],
) -> tuple[list[StoredRecord], list[tuple[Any, str]]]:
    good: list[StoredRecord] = []
    bad: list[tuple[Any, str]] = []
    for records in batch.values():
        for record in records:
            try:
                event = decode_event(record.value)
            except EventDecodeError as exc:
                bad.append((record, str(exc)))
                continue
            good.append(
                StoredRecord(record.topic, record.partition, record.offset, event)
            )
    return good, bad


def _offsets_after(batch: Mapping[Any, Sequence[Any]]) -> dict[Any, int]:
    return {tp: records[-1].offset + 1 for tp, records in batch.items() if records}


def _dlq_headers(record: Any, error: str) -> list[tuple[str, bytes]]:
    return [
        (DLQ_SOURCE_TOPIC, record.topic.encode("utf-8")),
        (DLQ_SOURCE_PARTITION, str(record.partition).encode("ascii")),
        (DLQ_SOURCE_OFFSET, str(record.offset).encode("ascii")),
        (DLQ_ERROR, error.encode("utf-8")[:1000]),
    ]


def _log_batch(
    batch: Mapping[Any, Sequence[Any]],
    result: BatchResult,
    dead_lettered: int,
) -> None:
    ranges = ", ".join(
        f"{tp.partition}:{records[0].offset}-{records[-1].offset}"
        for tp, records in sorted(batch.items(), key=lambda item: item[0].partition)
        if records
    )
    logger.info(
        "batch stored: partitions %s; applied %d, duplicates %d, dead-lettered %d",
        ranges,
        result.applied,
        result.duplicates,
        dead_lettered,
    )


def _mute(_record: logging.LogRecord) -> bool:
    """A log filter that drops every record."""
    return False


class _Shutdown:
    """The stop's deadline and what the broker left unanswered during it."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self.deadline: float | None = None
        self.flush_by = 0.0
        self._unanswered: list[str] = []
        self._previous_handler: Any = None

    def begin(self, stop_timeout: float) -> None:
        """Start the stop's clock (once): half for finishing, half for closing."""
        if self.deadline is None:
            now = asyncio.get_running_loop().time()
            self.deadline = now + stop_timeout
            self.flush_by = now + stop_timeout / 2
            # aiokafka logs every failed retry; the one line of report() says it.
            logging.getLogger("aiokafka").addFilter(_mute)
            loop = asyncio.get_running_loop()
            self._previous_handler = loop.get_exception_handler()
            loop.set_exception_handler(_quiet_kafka_errors)

    def end(self) -> None:
        """Unmute aiokafka's log; keep the exception handler if a request was
        given up on (aiokafka's task for it may still end later with an error)."""
        logging.getLogger("aiokafka").removeFilter(_mute)
        if self.deadline is not None and not self._unanswered:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(self._previous_handler)

    def unanswered(self, what: str) -> None:
        """Note that the broker did not answer ``what`` in time."""
        self._unanswered.append(what)

    @property
    def any_unanswered(self) -> bool:
        """Whether the broker left anything unanswered so far."""
        return bool(self._unanswered)

    def report(self, uncommitted: Mapping[Any, int]) -> None:
        """Log one warning if the broker left anything unanswered or uncommitted."""
        if not self._unanswered and not uncommitted:
            return
        if uncommitted:
            offsets = ", ".join(
                f"{tp.partition}:{offset}"
                for tp, offset in sorted(
                    uncommitted.items(), key=lambda i: i[0].partition
                )
            )
            committed = (
                f"offsets not committed (partition:next offset {offsets}); their "
                "records are stored and will be redelivered on restart, counted as "
                "duplicates"
            )
        else:
            committed = "every applied offset was committed"
        logger.warning(
            "Kafka at %s unreachable while stopping (no answer to %s); %s",
            self._bootstrap,
            ", ".join(self._unanswered) or "an offset commit",
            committed,
        )


def _quiet_kafka_errors(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any]
) -> None:
    """Log a Kafka error of a task aiokafka started and left behind (a commit
    request whose caller gave up) as one debug line, not a traceback; anything
    else goes to the default handler."""
    if isinstance(context.get("exception"), KafkaError):
        logger.debug("aiokafka background task ended: %s", context["exception"])
        return
    loop.default_exception_handler(context)


async def _begin_on(stop: asyncio.Event, shutdown: _Shutdown, timeout: float) -> None:
    await stop.wait()
    shutdown.begin(timeout)


async def _probe(
    consumer: Any, by: float, at_least: float, shutdown: _Shutdown
) -> None:
    """Ask the broker for metadata (by ``by``, or for ``at_least`` seconds) to
    learn whether it still answers; the offsets may all be committed and yet the
    broker gone."""
    wait = max(at_least, by - asyncio.get_running_loop().time())
    try:
        async with asyncio.timeout(wait):
            # aiokafka has no public "is the cluster reachable" call.
            await consumer._client.fetch_all_metadata()
    except (TimeoutError, KafkaError, OSError):
        shutdown.unanswered("a metadata request")


async def _close_clients(
    consumer: Any, producer: Any, deadline: float, reserve: float, shutdown: _Shutdown
) -> None:
    """Stop both clients by ``deadline - reserve``; past it, close their
    connections within ``reserve`` seconds."""
    stops = [
        asyncio.create_task(consumer.stop()),
        asyncio.create_task(producer.stop()),
    ]
    loop = asyncio.get_running_loop()
    wait = max(0.0, deadline - reserve - loop.time())
    _done, pending = await asyncio.wait(stops, timeout=wait)
    if pending:
        shutdown.unanswered("leaving the group")
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        # The clients' own stop got no answer: close their network clients so
        # no connection is left open (aiokafka's public stop has no deadline).
        await asyncio.gather(
            _close_network(consumer._client, reserve),
            _close_network(producer.client, reserve),
        )
    for task in stops:
        if not task.cancelled() and task.exception() is not None:
            logger.warning("closing a Kafka client failed: %s", task.exception())


async def _close_network(client: Any, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await client.close()
    except (TimeoutError, KafkaError, OSError) as exc:
        logger.warning(
            "closing Kafka connections failed: %s", exc or type(exc).__name__
        )
