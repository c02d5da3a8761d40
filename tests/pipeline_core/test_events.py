"""Event schema v1: one serialisation, and clear errors for records that are not it."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from pipeline_core.events import (
    EventDecodeError,
    EventType,
    FavoriteEvent,
    Source,
    decode_event,
    encode_event,
    header_value,
    new_trace_id,
)


def _event(**changes: object) -> FavoriteEvent:
    fields: dict[str, object] = {
        "type": EventType.ADDED,
        "user_id": "123456789012345678",
        "user_name": "Ada",
        "recipe_id": "42",
        "source": Source.DISCORD_SLASH,
        "trace_id": new_trace_id(),
    }
    fields.update(changes)
    return FavoriteEvent.model_validate(fields)


def test_round_trip_keeps_every_field() -> None:
    """encode then decode gives back an equal event."""
    event = _event(guild_id="99")

    _key, value, _headers = encode_event(event)

    assert decode_event(value) == event


def test_key_and_headers_follow_the_contract() -> None:
    """The key is the user id; headers carry trace id, schema version, content type."""
    event = _event()

    key, _value, headers = encode_event(event)

    assert key == b"123456789012345678"
    assert header_value(headers, "trace-id") == event.trace_id
    assert header_value(headers, "schema-version") == "1"
    assert header_value(headers, "content-type") == "application/json"


def test_value_is_the_documented_json() -> None:
    """The JSON has exactly the schema-v1 fields, occurred_at in UTC ISO 8601."""
    _key, value, _headers = encode_event(_event())

    document = json.loads(value)

    assert set(document) == {
        "event_id", "type", "user_id", "user_name", "recipe_id",
        "guild_id", "source", "occurred_at", "trace_id",
    }  # fmt: skip
    assert uuid.UUID(document["event_id"])
    assert document["occurred_at"].endswith("Z") or "+00:00" in document["occurred_at"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "schema-v1"),
        (b'{"type": "favorite.added"}', "schema-v1"),
    ],
)
def test_bad_records_raise_decode_errors(value: bytes, reason: str) -> None:
    """Empty, non-UTF-8, non-JSON and incomplete values raise EventDecodeError."""
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(value)


def test_unknown_field_is_rejected() -> None:
    """A value with a field schema v1 does not know is not accepted silently."""
    document = json.loads(encode_event(_event())[1])
    document["extra"] = 1

    with pytest.raises(EventDecodeError, match="extra"):
        decode_event(json.dumps(document).encode())


def test_naive_timestamp_is_rejected() -> None:
    """occurred_at without a time zone is refused: UTC is required."""
    document = json.loads(encode_event(_event())[1])
    document["occurred_at"] = "2026-01-01T10:00:00"

    with pytest.raises(EventDecodeError, match="time zone"):
        decode_event(json.dumps(document).encode())


@pytest.mark.parametrize("user_id", ["", "12a", "1" * 21, "-5"])
def test_user_ids_must_be_snowflakes(user_id: str) -> None:
    """User ids are 1 to 20 decimal digits."""
    with pytest.raises(ValidationError):
        _event(user_id=user_id)


def test_twenty_digit_user_id_is_kept_as_a_string() -> None:
    """The largest snowflake survives the round trip unchanged, as a string."""
    event = _event(user_id="9" * 20)

    assert decode_event(encode_event(event)[1]).user_id == "9" * 20
