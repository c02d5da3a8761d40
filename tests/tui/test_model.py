"""The dashboard's plain data: records, the bounded buffer, traces, lag helpers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord

from pipeline_core.events import EventType, FavoriteEvent, encode_event
from tui.model import (
    HOP_NAMES,
    DeadLetter,
    DeadLetterBuffer,
    LagTrend,
    RecordBuffer,
    TopicRecord,
    TraceBook,
    behind_from_stamp,
    describe_behind,
    format_age,
    format_latency,
    parse_user,
    record_from_kafka,
)
from tui.screens import MAX_BURST, parse_burst

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def consumer_record(
    value: bytes | None,
    *,
    topic: str = "favs",
    offset: int = 7,
    key: bytes | None = b"42",
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=1,
        offset=offset,
        timestamp=int(T0.timestamp() * 1000),
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=headers or [],
    )


def event(user_id: str = "42", trace_id: str = "trace-0001") -> FavoriteEvent:
    return FavoriteEvent(
        type=EventType.ADDED,
        user_id=user_id,
        user_name="Ada",
        recipe_id="12",
        trace_id=trace_id,
        occurred_at=T0 - timedelta(milliseconds=5),
    )


def topic_record(offset: int, user_id: str = "42", **extra: object) -> TopicRecord:
    fields: dict[str, object] = {
        "topic": "favs",
        "partition": 0,
        "offset": offset,
        "key": user_id,
        "timestamp": T0 + timedelta(seconds=offset),
        "value": "{}",
        "headers": (),
        "user_id": user_id,
        "trace_id": f"trace-{offset:04d}",
    }
    fields.update(extra)
    return TopicRecord(**fields)  # type: ignore[arg-type]


def test_a_valid_event_record_is_decoded_into_its_fields() -> None:
    """A schema-v1 record gives type, user, recipe, trace id and timestamps."""
    key, value, headers = encode_event(event())

    record = record_from_kafka(
        consumer_record(value, key=key, headers=headers), dead_letter_topic="favs.dlq"
    )

    assert (record.event_type, record.user_id, record.recipe_id) == (
        "favorite.added",
        "42",
        "12",
    )
    assert record.trace_id == "trace-0001"
    assert record.timestamp == T0
    assert record.occurred_at == T0 - timedelta(milliseconds=5)
    assert ("trace-id", "trace-0001") in record.headers
    assert record.error is None
    assert not record.dead_letter


def test_a_malformed_record_is_kept_with_the_reason() -> None:
    """A value that is not an event keeps its raw text and says why it is invalid."""
    record = record_from_kafka(
        consumer_record(b'{"broken": '), dead_letter_topic="favs.dlq"
    )

    assert record.error is not None
    assert record.value == '{"broken": '
    assert record.event_type is None


def test_records_from_the_dead_letter_topic_are_marked() -> None:
    """A record read from <topic>.dlq is flagged as a dead letter."""
    record = record_from_kafka(
        consumer_record(b"x", topic="favs.dlq"), dead_letter_topic="favs.dlq"
    )

    assert record.dead_letter


def test_detail_shows_pretty_json_and_headers() -> None:
    """The detail view holds the value as indented JSON and every header."""
    key, value, headers = encode_event(event())
    record = record_from_kafka(
        consumer_record(value, key=key, headers=headers), dead_letter_topic="x"
    )

    detail = record.detail()

    assert '  "recipe_id": "12"' in detail
    assert "  schema-version: 1" in detail
    assert json.loads(detail[detail.index("value:\n") + 7 :])["user_id"] == "42"


def test_the_buffer_keeps_only_the_newest_records() -> None:
    """Past its capacity the buffer drops the oldest records."""
    buffer = RecordBuffer(capacity=3)

    buffer.extend(topic_record(offset) for offset in range(10))

    assert len(buffer) == 3
    assert [r.offset for r in buffer.visible()] == [9, 8, 7]
    assert buffer.seen == 10


def test_a_paused_buffer_counts_but_keeps_nothing_new() -> None:
    """While paused, records are counted as missed and the view holds still."""
    buffer = RecordBuffer()
    buffer.add(topic_record(1))
    buffer.toggle_pause()

    kept = buffer.add(topic_record(2))

    assert not kept
    assert buffer.missed == 1
    assert [r.offset for r in buffer.visible()] == [1]
    assert buffer.toggle_pause() is False
    assert buffer.missed == 0


def test_the_filter_matches_every_word_in_any_field() -> None:
    """Filter words are looked for across fields, case-insensitively; all must match."""
    buffer = RecordBuffer()
    buffer.add(topic_record(1, user_id="111", event_type="favorite.added"))
    buffer.add(topic_record(2, user_id="222", event_type="favorite.removed"))

    buffer.filter_text = "REMOVED 222"
    assert [r.offset for r in buffer.visible()] == [2]
    buffer.filter_text = "removed 111"
    assert buffer.visible() == []


def test_visible_stops_at_the_limit() -> None:
    """visible(limit) returns at most limit records, the newest."""
    buffer = RecordBuffer()
    buffer.extend(topic_record(offset) for offset in range(50))

    assert [r.offset for r in buffer.visible(limit=2)] == [49, 48]


def test_a_trace_gets_every_hop_from_bot_topic_and_database() -> None:
    """Exchange, topic record and store time together fill the five hops in order,
    each with its latency from the hop that caused it (the reply: from the append)."""
    book = TraceBook()
    record = topic_record(3, trace_id="discord-1", occurred_at=T0)
    book.record_exchange(
        "discord-1",
        command="/favorite add recipe:12",
        user="42",
        started_at=T0 - timedelta(milliseconds=20),
        finished_at=T0 + timedelta(seconds=5),
        reply="saved",
    )
    book.record_topic(record)
    book.record_stored("discord-1", T0 + timedelta(seconds=4))

    trace = book.get("discord-1")

    assert trace is not None
    assert trace.complete
    rows = trace.rows()
    assert [row[0] for row in rows] == list(HOP_NAMES)
    assert rows[0][2] == ""
    assert rows[1][2] == "+20.0 ms"
    assert rows[2][2] == "+3.00 s"
    assert rows[3][2] == "+1.00 s"
    assert rows[4][2] == "+2.00 s"


def test_a_trace_shows_hops_not_seen_yet() -> None:
    """A trace known only from the topic marks the other hops as not seen."""
    book = TraceBook()
    book.record_topic(topic_record(1, trace_id="t-00001", occurred_at=T0))

    trace = book.get("t-00001")

    assert trace is not None
    assert not trace.complete
    assert trace.rows()[0] == ("command received", "not seen yet", "")
    assert book.waiting_for_store() == ["t-00001"]


def test_dead_letters_and_records_without_trace_make_no_trace() -> None:
    """Only valid records of the interactions topic start a trace."""
    book = TraceBook()

    book.record_topic(topic_record(1, trace_id=None))
    book.record_topic(topic_record(2, dead_letter=True))

    assert len(book) == 0


def test_the_trace_book_is_bounded() -> None:
    """Past its capacity the least recently touched traces are dropped."""
    book = TraceBook(capacity=2)
    for name in ("a-000001", "b-000001", "c-000001"):
        book.touch(name)

    assert [trace.trace_id for trace in book] == ["c-000001", "b-000001"]


def test_the_lag_trend_keeps_its_last_points() -> None:
    """The sparkline's data is bounded to the newest points."""
    trend = LagTrend(capacity=3)
    for total in range(6):
        trend.add(total)

    assert trend.values() == [3.0, 4.0, 5.0]


def test_time_behind_is_described_for_the_lag_table() -> None:
    """Unknown time behind shows as '?', a known one in seconds."""
    assert describe_behind(None) == "?"
    assert describe_behind(timedelta(seconds=1.25)) == "1.2 s"


def test_behind_from_stamp_is_zero_unknown_or_the_waiting_records_age() -> None:
    """No lag: zero; lag without a stamp: unknown; else now minus the stamp, >= 0."""
    now = T0 + timedelta(seconds=4)

    assert behind_from_stamp(0, None, now) == timedelta(0)
    assert behind_from_stamp(3, None, now) is None
    assert behind_from_stamp(3, T0, now) == timedelta(seconds=4)
    assert behind_from_stamp(3, now + timedelta(seconds=1), now) == timedelta(0)


def dead_letter_record(
    offset: int, headers: tuple[tuple[str, str], ...]
) -> TopicRecord:
    return topic_record(
        offset, topic="favs.dlq", dead_letter=True, error="bad", headers=headers
    )


def test_a_dead_letter_reads_its_source_and_error_from_the_headers() -> None:
    """The consumer's dlq-* headers give the source position and the error."""
    record = dead_letter_record(
        3,
        (
            ("dlq-source-topic", "favs"),
            ("dlq-source-partition", "2"),
            ("dlq-source-offset", "41"),
            ("dlq-error", "not a schema-v1 event"),
        ),
    )

    letter = DeadLetter.from_record(record)

    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "favs",
        2,
        41,
    )
    assert letter.error == "not a schema-v1 event"
    assert letter.source("favs") == "2/41"
    assert letter.source("other") == "favs 2/41"


def test_a_dead_letter_without_headers_says_what_is_unknown() -> None:
    """Missing or unreadable dlq-* headers become None and '?' in the source."""
    letter = DeadLetter.from_record(
        dead_letter_record(3, (("dlq-source-partition", "x"),))
    )

    assert letter.error is None
    assert letter.source("favs") == "? ?/?"


def test_the_dead_letter_buffer_keeps_only_the_newest_dead_letters() -> None:
    """Only records of the dead-letter topic are kept, at most ``capacity``."""
    letters = DeadLetterBuffer(capacity=2)

    added = letters.add_from(
        [topic_record(0), *(dead_letter_record(n, ()) for n in range(1, 4))]
    )

    assert added == 3
    assert letters.seen == 3
    assert [letter.record.offset for letter in letters.newest()] == [3, 2]


@pytest.mark.parametrize(
    ("seconds", "text"), [(-5, "0s"), (59, "59s"), (61, "1m"), (7300, "2h")]
)
def test_ages_are_short_and_never_negative(seconds: int, text: str) -> None:
    """format_age gives seconds, minutes or hours, clamping clock skew to 0."""
    assert format_age(T0, T0 + timedelta(seconds=seconds)) == text


def test_latency_switches_to_seconds_past_one_second() -> None:
    """Latencies under a second are in ms, others in s, with their sign."""
    assert format_latency(timedelta(milliseconds=12.34)) == "+12.3 ms"
    assert format_latency(timedelta(seconds=-1.5)) == "-1.50 s"


def test_the_user_field_takes_an_id_and_a_name() -> None:
    """'ID NAME' gives both; a name may hold spaces and any Unicode."""
    assert parse_user("  1001 Ada Lovelace ") == ("1001", "Ada Lovelace")
    assert parse_user("123456789012345678") == ("123456789012345678", "user5678")


@pytest.mark.parametrize("text", ["", "ada 1001", "-5 Ada", "1" * 21])
def test_the_user_field_refuses_what_is_not_a_snowflake(text: str) -> None:
    """An id that is not 1 to 20 digits is refused with the expected form."""
    with pytest.raises(ValueError, match="ID NAME"):
        parse_user(text)


def test_the_burst_form_accepts_counts_and_rates_in_range() -> None:
    """Whole numbers in range pass the burst form."""
    assert parse_burst("500", "200") == (500, 200)


@pytest.mark.parametrize(
    ("count", "rate", "reason"),
    [
        ("x", "1", "whole numbers"),
        ("0", "1", "count"),
        (str(MAX_BURST + 1), "1", "count"),
        ("5", "0", "rate"),
    ],
)
def test_the_burst_form_refuses_bad_values(count: str, rate: str, reason: str) -> None:
    """A count or rate outside its range is refused, naming the field."""
    with pytest.raises(ValueError, match=reason):
        parse_burst(count, rate)


def test_uuid_event_ids_survive_decoding() -> None:
    """The decoded record carries the event id as text."""
    sent = event()
    key, value, _headers = encode_event(sent)

    record = record_from_kafka(consumer_record(value, key=key), dead_letter_topic="x")

    assert uuid.UUID(record.event_id or "") == sent.event_id
