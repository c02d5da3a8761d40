"""Consumer lag: read it from the broker, and judge it the way Burrow does.

:class:`LagReader` asks the broker, through its own admin and consumer clients, for a
group's committed offsets and a topic's end offsets, and returns a
:class:`LagSnapshot`. :class:`LagEvaluator` keeps a bounded window of snapshots and
gives each partition, and the group as a whole, a :class:`LagStatus`. The rules are
Burrow's, adapted to periodic snapshots (Burrow sees every commit; we only see the
committed offset each time we look); they are documented on :func:`evaluate_partition`.

Lag is never negative. A partition the group has not committed on yet counts from
the earliest offset still in the log (the start of the partition), because that is
where a new group with ``auto_offset_reset="earliest"`` starts reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

#: How long one :meth:`LagReader.read` may take before it gives up.
DEFAULT_READ_TIMEOUT_S = 10.0


class LagError(RuntimeError):
    """Lag could not be read; the message says what was tried and what to do."""


class GroupNotFound(LagError):
    """The consumer group is not known to the broker."""


class TopicNotFound(LagError):
    """The topic does not exist on the broker."""


class BrokerUnreachable(LagError):
    """The broker did not answer within the time allowed."""


@dataclass(frozen=True)
class PartitionLag:
    """One partition's position: what the group committed, where the log ends.

    Attributes:
        partition: the partition number.
        committed: the group's committed offset (the next record it will read), or
            ``None`` when it never committed on this partition.
        end_offset: the offset the next produced record will get.
        lag: records between the two, never negative; counted from the earliest
            offset in the log when ``committed`` is ``None``.
    """

    partition: int
    committed: int | None
    end_offset: int
    lag: int


@dataclass(frozen=True)
class LagSnapshot:
    """A group's lag on one topic at one moment."""

    group: str
    topic: str
    taken_at: datetime
    partitions: tuple[PartitionLag, ...]

    @property
    def total(self) -> int:
        """The sum of every partition's lag."""
        return sum(part.lag for part in self.partitions)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape ``recipe-pipeline lag --json`` prints)."""
        return {
            "group": self.group,
            "topic": self.topic,
            "taken_at": self.taken_at.isoformat(),
            "total": self.total,
            "partitions": [
                {
                    "partition": part.partition,
                    "committed": part.committed,
                    "end_offset": part.end_offset,
                    "lag": part.lag,
                }
                for part in self.partitions
            ],
        }


def partition_lag(
    partition: int, committed: int | None, start_offset: int, end_offset: int
) -> PartitionLag:
    """Work out one partition's lag; never negative.

    Args:
        partition: the partition number.
        committed: the committed offset, or ``None`` (or a negative value, the
            broker's "no offset") when the group never committed there.
        start_offset: the earliest offset still in the log.
        end_offset: the offset the next produced record will get.
    """
    if committed is not None and committed < 0:
        committed = None
    position = start_offset if committed is None else max(committed, start_offset)
    return PartitionLag(partition, committed, end_offset, max(0, end_offset - position))


class LagReader:
    """Reads a group's lag from the broker; owns its admin and consumer clients.

    Use as ``async with LagReader(bootstrap) as reader: await reader.read(g, t)``.
    Every call is bounded by ``timeout_s``; a broker that does not answer raises
    :class:`BrokerUnreachable` rather than waiting forever.
    """

    def __init__(self, bootstrap: str, *, timeout_s: float = DEFAULT_READ_TIMEOUT_S):
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._admin: Any = None
        self._consumer: Any = None

    async def __aenter__(self) -> LagReader:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        if self._admin is not None:
            raise RuntimeError("LagReader is already open; did you enter it twice?")
        request_ms = int(self._timeout_s * 1000)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap,
            client_id="recipe-pipeline-lag",
            request_timeout_ms=request_ms,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id="recipe-pipeline-lag",
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=request_ms,
        )
        try:
            await self._bounded(admin.start(), "connect the admin client")
            await self._bounded(consumer.start(), "connect the offsets client")
        except BaseException:
            await _close_quietly(consumer.stop(), "offsets client")
            await _close_quietly(admin.close(), "admin client")
            raise
        self._admin, self._consumer = admin, consumer
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        consumer, admin = self._consumer, self._admin
        self._consumer = self._admin = None
        if consumer is not None:
            await _close_quietly(consumer.stop(), "offsets client")
        if admin is not None:
            await _close_quietly(admin.close(), "admin client")

    async def read(self, group: str, topic: str) -> LagSnapshot:
        """Read ``group``'s lag on ``topic`` now.

        Raises:
            GroupNotFound: the broker knows no group of that name.
            TopicNotFound: the topic does not exist.
            BrokerUnreachable: the broker did not answer within the timeout.
        """
        if self._admin is None:
            raise RuntimeError("LagReader is not open; use it with 'async with'")
        snapshot: LagSnapshot = await self._bounded(
            self._read(group, topic), f"read lag of {group!r}"
        )
        return snapshot

    async def _read(self, group: str, topic: str) -> LagSnapshot:
        from aiokafka import TopicPartition

        partitions = await self._partitions(topic)
        groups = await self._admin.list_consumer_groups()
        if group not in {entry[0] for entry in groups}:
            raise GroupNotFound(
                f"consumer group {group!r} is not known to the broker at "
                f"{self._bootstrap}; check the name (--group) or start its consumer"
            )

        tps = [TopicPartition(topic, number) for number in partitions]
        committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        starts = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        taken_at = datetime.now(UTC)

        lags = []
        for tp in tps:
            meta = committed.get(tp)
            offset = None if meta is None else int(meta.offset)
            lags.append(partition_lag(tp.partition, offset, starts[tp], ends[tp]))
        return LagSnapshot(group, topic, taken_at, tuple(lags))

    async def _partitions(self, topic: str) -> list[int]:
        described = await self._admin.describe_topics([topic])
        for entry in described:
            if entry.get("topic") != topic:
                continue
            numbers = sorted(int(p["partition"]) for p in entry.get("partitions", []))
            if entry.get("error_code", 0) == 0 and numbers:
                return numbers
        raise TopicNotFound(
            f"topic {topic!r} does not exist on the broker at {self._bootstrap}; "
            "check the name (--topic) or create it"
        )

    async def _bounded(self, awaitable: Any, what: str) -> Any:
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

        try:
            return await asyncio.wait_for(awaitable, self._timeout_s)
        except (TimeoutError, KafkaTimeoutError) as exc:
            raise BrokerUnreachable(
                f"could not {what}: the broker at {self._bootstrap} did not answer "
                f"within {self._timeout_s:g} s; check KAFKA_BOOTSTRAP_SERVERS and "
                "that the broker runs"
            ) from exc
        except KafkaConnectionError as exc:
            raise BrokerUnreachable(
                f"could not {what}: no connection to the broker at "
                f"{self._bootstrap} ({exc}); check KAFKA_BOOTSTRAP_SERVERS and that "
                "the broker runs"
            ) from exc


async def _close_quietly(awaitable: Any, what: str) -> None:
    try:
        await asyncio.wait_for(awaitable, DEFAULT_READ_TIMEOUT_S)
    except Exception:
        logger.warning("lag reader: closing the %s failed", what, exc_info=True)


class LagStatus(StrEnum):
    """A Burrow-style verdict on a partition or a group, in rising severity."""

    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"

    @property
    def severity(self) -> int:
        """0 for OK up to 3 for STOP."""
        return list(LagStatus).index(self)


@dataclass(frozen=True)
class LagPoint:
    """One partition's lag at one moment, as the evaluator sees it."""

    taken_at: datetime
    committed: int | None
    lag: int


@dataclass(frozen=True)
class PartitionVerdict:
    """A partition's status and the rule that gave it."""

    partition: int
    status: LagStatus
    reason: str


@dataclass(frozen=True)
class LagEvaluation:
    """The group's status (its worst partition) and each partition's verdict."""

    status: LagStatus
    partitions: tuple[PartitionVerdict, ...] = field(default=())


def evaluate_partition(
    points: Sequence[LagPoint],
    *,
    unchanged_since: datetime | None = None,
    min_points: int = 3,
) -> tuple[LagStatus, str]:
    """Judge one partition over a window of points (oldest first).

    The rules, checked in this order (after Burrow's consumer evaluation):

    1. Fewer than ``min_points`` points: OK, there is not enough to judge.
    2. Lag was 0 at any point of the window: OK, the consumer caught up in it.
    3. The committed offset never changed over the window while lag stayed above 0:
       - STOP when the group has no committed offset at all, or when the offset has
         not moved for more than twice the window's span (``unchanged_since``, the
         time it was first seen at its current value, may reach back before the
         window): the consumer is gone or has given up;
       - STALL otherwise: something still holds the partition but does not advance.
    4. The committed offset advanced and the lag grew at every step of the window:
       WARN, the consumer works but falls further behind.
    5. Otherwise (offset advancing, lag flat or shrinking at some step): OK.

    Args:
        points: the partition's points, oldest first.
        unchanged_since: when the current committed offset was first seen; defaults
            to the first point of the window that has it.
        min_points: points needed before anything but OK is said.

    Returns:
        ``(status, reason)``; the reason is one short sentence for people.
    """
    if len(points) < min_points:
        return LagStatus.OK, "not enough samples yet"
    if any(point.lag == 0 for point in points):
        return LagStatus.OK, "caught up within the window"

    first, last = points[0], points[-1]
    if all(point.committed == last.committed for point in points):
        if last.committed is None:
            return LagStatus.STOP, "no offset ever committed while records wait"
        since = unchanged_since if unchanged_since is not None else first.taken_at
        span = last.taken_at - first.taken_at
        if span > timedelta(0) and last.taken_at - since > 2 * span:
            return LagStatus.STOP, "committed offset has not moved for over 2 windows"
        return LagStatus.STALL, "committed offset not advancing while lag > 0"

    if all(later.lag > earlier.lag for earlier, later in pairwise(points)):
        return LagStatus.WARN, "committing, but lag grew at every sample"
    return LagStatus.OK, "committing and keeping up"


class LagEvaluator:
    """Keeps the last ``window`` snapshots of one group and topic and judges them.

    Feed it snapshots in time order with :meth:`add`; memory stays bounded by the
    window. A partition that appears later is judged on the points it has.
    """

    def __init__(self, window: int = 10, *, min_points: int = 3) -> None:
        if window < 2:
            raise ValueError("the lag window needs at least 2 snapshots")
        self._window: deque[LagSnapshot] = deque(maxlen=window)
        self._min_points = min(min_points, window)
        self._unchanged_since: dict[int, tuple[int | None, datetime]] = {}

    @property
    def snapshots(self) -> tuple[LagSnapshot, ...]:
        """The snapshots in the window, oldest first."""
        return tuple(self._window)

    def add(self, snapshot: LagSnapshot) -> LagEvaluation:
        """Add a snapshot (newer than the last one) and return the new evaluation."""
        if self._window and snapshot.taken_at < self._window[-1].taken_at:
            raise ValueError("lag snapshots must be added oldest first")
        self._window.append(snapshot)
        for part in snapshot.partitions:
            known = self._unchanged_since.get(part.partition)
            if known is None or known[0] != part.committed:
                self._unchanged_since[part.partition] = (
                    part.committed,
                    snapshot.taken_at,
                )
        return self.evaluate()

    def evaluate(self) -> LagEvaluation:
        """Judge every partition seen in the latest snapshot, and the group."""
        if not self._window:
            return LagEvaluation(LagStatus.OK)
        verdicts = []
        for part in self._window[-1].partitions:
            points = [
                LagPoint(snap.taken_at, p.committed, p.lag)
                for snap in self._window
                for p in snap.partitions
                if p.partition == part.partition
            ]
            since = self._unchanged_since.get(part.partition, (None, None))[1]
            status, reason = evaluate_partition(
                points, unchanged_since=since, min_points=self._min_points
            )
            verdicts.append(PartitionVerdict(part.partition, status, reason))
        worst = max(
            (v.status for v in verdicts), key=lambda s: s.severity, default=LagStatus.OK
        )
        return LagEvaluation(worst, tuple(verdicts))
