"""What the dashboard shows, as plain data: records, buffers, traces, lag trends.

Nothing here touches the network, the database or Textual; the panels render these
objects and the sources (:mod:`tui.sources`) fill them. Every collection is bounded.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from pipeline_core.events import (
    DLQ_ERROR,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    EventDecodeError,
    decode_event,
)

#: Records the topic panel keeps (older ones are dropped).
TOPIC_BUFFER = 2_000
#: Dead letters the dead-letter panel keeps.
DEAD_LETTER_BUFFER = 500
#: Traces the trace book keeps.
TRACE_BOOK_SIZE = 500
#: Lag totals the trend keeps.
LAG_TREND_POINTS = 120


@dataclass(frozen=True)
class TopicRecord:
    """One record seen on the interactions topic or its dead-letter topic.

    Attributes:
        topic: the topic it was read from.
        partition: its partition.
        offset: its offset.
        key: the record key as text (``""`` when absent).
        timestamp: the record's timestamp (producer create time), UTC.
        value: the raw value as text (undecodable bytes replaced).
        headers: the record headers as text.
        event_type, user_id, user_name, recipe_id, trace_id, event_id: from the
            decoded event, ``None`` when the value is not a valid event.
        occurred_at: when the backend accepted the interaction (from the event).
        error: why the value is not a valid event, ``None`` when it is.
        dead_letter: it was read from the dead-letter topic.
    """

    topic: str
    partition: int
    offset: int
    key: str
    timestamp: datetime
    value: str
    headers: tuple[tuple[str, str], ...]
    event_type: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    recipe_id: str | None = None
    trace_id: str | None = None
    event_id: str | None = None
    occurred_at: datetime | None = None
    error: str | None = None
    dead_letter: bool = False

    @cached_property
    def search_text(self) -> str:
        """Every field the filter looks in, lower-cased and joined (made once)."""
        parts = [
            self.topic,
            str(self.partition),
            str(self.offset),
            self.key,
            self.event_type or "",
            self.user_id or "",
            self.user_name or "",
            self.recipe_id or "",
            self.trace_id or "",
            self.event_id or "",
            self.error or "",
        ]
        return " ".join(parts).lower()

    def detail(self) -> str:
        """The value as pretty JSON (or as it is, when not JSON) and the headers."""
        try:
            body = json.dumps(json.loads(self.value), indent=2, sort_keys=True)
        except ValueError:
            body = self.value
        header_lines = [f"  {name}: {value}" for name, value in self.headers]
        lines = [
            f"{self.topic} partition {self.partition} offset {self.offset}",
            f"key: {self.key or '(none)'}",
            f"timestamp: {self.timestamp.isoformat()}",
        ]
        if self.error:
            lines.append(f"not a valid event: {self.error}")
        lines += ["headers:", *(header_lines or ["  (none)"]), "value:", body]
        return "\n".join(lines)


def record_from_kafka(message: Any, *, dead_letter_topic: str) -> TopicRecord:
    """Turn a consumed aiokafka record into a :class:`TopicRecord`.

    A value that is not a valid schema-v1 event is kept, with the reason in
    ``error``; nothing a producer wrote is dropped here.
    """
    raw_value: bytes | None = message.value
    headers = tuple(
        (str(name), bytes(raw).decode("utf-8", errors="replace"))
        for name, raw in (message.headers or ())
    )
    key = message.key.decode("utf-8", errors="replace") if message.key else ""
    timestamp = datetime.fromtimestamp(message.timestamp / 1000, UTC)
    text = raw_value.decode("utf-8", errors="replace") if raw_value else ""
    common: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": key,
        "timestamp": timestamp,
        "value": text,
        "headers": headers,
        "dead_letter": message.topic == dead_letter_topic,
    }
    try:
        event = decode_event(raw_value)
    except EventDecodeError as exc:
        return TopicRecord(**common, error=str(exc))
    return TopicRecord(
        **common,
        event_type=event.type.value,
        user_id=event.user_id,
        user_name=event.user_name,
        recipe_id=event.recipe_id,
        trace_id=event.trace_id,
        event_id=str(event.event_id),
        occurred_at=event.occurred_at,
    )


@dataclass(frozen=True)
class DeadLetter:
    """A record of the dead-letter topic, with where it came from and why.

    Attributes:
        record: the record as read from ``<topic>.dlq``.
        source_topic, source_partition, source_offset: where the consumer read the
            original record (from the ``dlq-source-*`` headers; ``None`` when absent).
        error: why the consumer could not store it (the ``dlq-error`` header).
    """

    record: TopicRecord
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    error: str | None

    @classmethod
    def from_record(cls, record: TopicRecord) -> DeadLetter:
        """Read the consumer's ``dlq-*`` headers off a dead-letter record."""
        headers = dict(record.headers)
        return cls(
            record=record,
            source_topic=headers.get(DLQ_SOURCE_TOPIC),
            source_partition=_int_or_none(headers.get(DLQ_SOURCE_PARTITION)),
            source_offset=_int_or_none(headers.get(DLQ_SOURCE_OFFSET)),
            error=headers.get(DLQ_ERROR),
        )

    def source(self, topic: str) -> str:
        """``partition/offset`` of the original record, its topic first if not
        ``topic``; ``?`` for what the headers do not say."""
        partition = "?" if self.source_partition is None else self.source_partition
        offset = "?" if self.source_offset is None else self.source_offset
        where = f"{partition}/{offset}"
        if self.source_topic is not None and self.source_topic == topic:
            return where
        return f"{self.source_topic or '?'} {where}"


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class DeadLetterBuffer:
    """The newest ``capacity`` dead letters, newest first when read."""

    def __init__(self, capacity: int = DEAD_LETTER_BUFFER) -> None:
        self._letters: deque[DeadLetter] = deque(maxlen=capacity)
        self.capacity = capacity
        self.seen = 0

    def __len__(self) -> int:
        return len(self._letters)

    def add_from(self, records: Iterable[TopicRecord]) -> int:
        """Keep the dead-letter records among ``records``; returns how many."""
        added = 0
        for record in records:
            if record.dead_letter:
                self._letters.append(DeadLetter.from_record(record))
                added += 1
        self.seen += added
        return added

    def newest(self, limit: int | None = None) -> list[DeadLetter]:
        """The kept dead letters, newest first, at most ``limit``."""
        return list(itertools.islice(reversed(self._letters), limit))


def format_age(then: datetime, now: datetime) -> str:
    """A short age such as ``3s``, ``4m`` or ``2h`` (never negative)."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


class RecordBuffer:
    """The last ``capacity`` records, with a filter and a pause.

    While paused, new records are counted but not kept, so the view holds still;
    resuming does not bring the missed ones back (the topic still has them).

    Args:
        capacity: how many records are kept.
    """

    def __init__(self, capacity: int = TOPIC_BUFFER) -> None:
        self._records: deque[TopicRecord] = deque(maxlen=capacity)
        self.capacity = capacity
        self.paused = False
        self.missed = 0
        self.seen = 0
        self.filter_text = ""

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: TopicRecord) -> bool:
        """Keep ``record`` unless paused; returns whether it was kept."""
        self.seen += 1
        if self.paused:
            self.missed += 1
            return False
        self._records.append(record)
        return True

    def extend(self, records: Iterable[TopicRecord]) -> int:
        """Add many records; returns how many were kept."""
        return sum(1 for record in records if self.add(record))

    def toggle_pause(self) -> bool:
        """Pause or resume; returns the new paused state."""
        self.paused = not self.paused
        if not self.paused:
            self.missed = 0
        return self.paused

    def matches(self, record: TopicRecord) -> bool:
        """Whether ``record`` passes the filter (every word must appear)."""
        words = self.filter_text.lower().split()
        text = record.search_text if words else ""
        return all(word in text for word in words)

    def visible(self, limit: int | None = None) -> list[TopicRecord]:
        """The records that pass the filter, newest first, at most ``limit``."""
        if not self.filter_text.split():
            newest = reversed(self._records)
            return list(itertools.islice(newest, limit))
        shown: list[TopicRecord] = []
        for record in reversed(self._records):
            if self.matches(record):
                shown.append(record)
                if limit is not None and len(shown) >= limit:
                    break
        return shown

    def find(self, topic: str, partition: int, offset: int) -> TopicRecord | None:
        """The kept record at that position, if any."""
        for record in reversed(self._records):
            if (record.topic, record.partition, record.offset) == (
                topic,
                partition,
                offset,
            ):
                return record
        return None

    def timestamp_at(self, topic: str, partition: int, offset: int) -> datetime | None:
        """The timestamp of the kept record at that position, if any."""
        record = self.find(topic, partition, offset)
        return record.timestamp if record is not None else None


@dataclass(frozen=True)
class Hop:
    """One step of an interaction's trip, with when it happened."""

    name: str
    at: datetime | None


#: The hops of a trace, in the order an interaction passes them.
HOP_NAMES = (
    "command received",
    "API accepted",
    "appended to the topic",
    "stored",
    "bot replied",
)

#: Hops whose cause is not the hop listed before them.
HOP_CAUSES = {"bot replied": "appended to the topic"}


@dataclass
class Trace:
    """What is known about one interaction, by trace id."""

    trace_id: str
    command: str | None = None
    user: str | None = None
    received_at: datetime | None = None
    accepted_at: datetime | None = None
    appended_at: datetime | None = None
    stored_at: datetime | None = None
    replied_at: datetime | None = None
    reply: str | None = None
    position: str | None = None

    def hops(self) -> list[Hop]:
        """The five hops in order; a hop not seen yet has ``at`` ``None``."""
        times = (
            self.received_at,
            self.accepted_at,
            self.appended_at,
            self.stored_at,
            self.replied_at,
        )
        return [Hop(name, at) for name, at in zip(HOP_NAMES, times, strict=True)]

    def rows(self) -> list[tuple[str, str, str]]:
        """``(hop, time, latency)`` rows for a table.

        A hop's latency is measured from the hop that caused it: the previous one,
        except for the bot's reply, which follows the API's answer (sent once the
        record was appended), not the store, so it is measured from the append.
        """
        seen = {hop.name: hop.at for hop in self.hops()}
        rows: list[tuple[str, str, str]] = []
        for index, hop in enumerate(self.hops()):
            if hop.at is None:
                rows.append((hop.name, "not seen yet", ""))
                continue
            cause = HOP_CAUSES.get(hop.name, HOP_NAMES[index - 1] if index else None)
            since = seen.get(cause) if cause is not None else None
            latency = "" if since is None else format_latency(hop.at - since)
            rows.append((hop.name, hop.at.strftime("%H:%M:%S.%f")[:-3], latency))
        return rows

    @property
    def complete(self) -> bool:
        """Every hop has been seen."""
        return all(hop.at is not None for hop in self.hops())


def format_latency(delta: timedelta) -> str:
    """A latency such as ``+12.3 ms`` or ``+1.20 s`` (clock skew can make it < 0)."""
    millis = delta.total_seconds() * 1000
    if abs(millis) < 1000:
        return f"{millis:+.1f} ms"
    return f"{millis / 1000:+.2f} s"


class TraceBook:
    """Traces by id, the most recently touched kept, at most ``capacity``."""

    def __init__(self, capacity: int = TRACE_BOOK_SIZE) -> None:
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(reversed(self._traces.values()))

    def get(self, trace_id: str) -> Trace | None:
        """The trace with that id, if kept."""
        return self._traces.get(trace_id)

    def touch(self, trace_id: str) -> Trace:
        """The trace with that id, made if new, moved to the newest place."""
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = Trace(trace_id)
        self._traces.move_to_end(trace_id)
        while len(self._traces) > self.capacity:
            self._traces.popitem(last=False)
        return trace

    def record_exchange(
        self,
        trace_id: str,
        *,
        command: str,
        user: str,
        started_at: datetime,
        finished_at: datetime,
        reply: str,
    ) -> Trace:
        """Note a bot exchange: the command received and the bot's reply."""
        trace = self.touch(trace_id)
        trace.command, trace.user, trace.reply = command, user, reply
        trace.received_at, trace.replied_at = started_at, finished_at
        return trace

    def record_topic(self, record: TopicRecord) -> Trace | None:
        """Note a record on the topic: accepted by the API, appended to the topic."""
        if record.trace_id is None or record.dead_letter:
            return None
        trace = self.touch(record.trace_id)
        trace.accepted_at = record.occurred_at
        trace.appended_at = record.timestamp
        trace.position = f"{record.partition}/{record.offset}"
        if trace.user is None:
            trace.user = record.user_name
        return trace

    def record_stored(self, trace_id: str, stored_at: datetime) -> Trace | None:
        """Note that the consumer applied the trace's event (only kept traces)."""
        trace = self._traces.get(trace_id)
        if trace is not None and trace.stored_at is None:
            trace.stored_at = stored_at
        return trace

    def waiting_for_store(self, limit: int = 50) -> list[str]:
        """Ids of traces on the topic that are not seen stored yet, newest first."""
        waiting = [
            trace.trace_id
            for trace in self
            if trace.appended_at is not None and trace.stored_at is None
        ]
        return waiting[:limit]


@dataclass
class LagTrend:
    """The total lag over time, for the sparkline, at most ``capacity`` points."""

    capacity: int = LAG_TREND_POINTS
    points: deque[int] = field(default_factory=deque)

    def add(self, total: int) -> None:
        """Add the newest total."""
        self.points.append(total)
        while len(self.points) > self.capacity:
            self.points.popleft()

    def values(self) -> list[float]:
        """The totals as floats, oldest first."""
        return [float(point) for point in self.points]


def behind_from_stamp(
    lag: int, stamp: datetime | None, now: datetime
) -> timedelta | None:
    """Time behind of a partition from the stamp of its oldest waiting record.

    Zero when nothing waits (``lag`` 0); ``None`` when records wait but the stamp
    is unknown; else ``now - stamp``, never negative.
    """
    if lag <= 0:
        return timedelta(0)
    if stamp is None:
        return None
    return max(timedelta(0), now - stamp)


def describe_behind(behind: timedelta | None) -> str:
    """``1.2 s``-style text for a time behind, ``?`` when unknown."""
    if behind is None:
        return "?"
    seconds = behind.total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def parse_user(text: str) -> tuple[str, str]:
    """Parse the bot panel's ``user`` field: ``ID NAME`` or ``ID`` alone.

    Raises:
        ValueError: the id is not a Discord snowflake (1 to 20 digits).
    """
    parts = text.strip().split(maxsplit=1)
    if not parts or not parts[0].isdigit() or len(parts[0]) > 20:
        raise ValueError("the user is 'ID NAME': a numeric Discord id, then a name")
    user_id = parts[0]
    user_name = parts[1] if len(parts) > 1 else f"user{user_id[-4:]}"
    return user_id, user_name
