"""The interaction event, schema v1, and its one serialisation to and from Kafka.

Key: the ``user_id`` (so one user's events keep their order). Value: UTF-8 JSON of
:class:`FavoriteEvent`. Headers: ``trace-id``, ``schema-version``, ``content-type``.
Every producer and consumer goes through :func:`encode_event` / :func:`decode_event`;
no dict-shaped event is passed around.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

SCHEMA_VERSION = "1"
CONTENT_TYPE = "application/json"

#: Discord snowflakes: decimal strings of 1 to 20 digits, kept as strings.
Snowflake = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
#: Recipe ids of the shipped catalog are short decimal strings.
RecipeId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}$")]
UserName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
TraceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{8,64}$")]

TRACE_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

#: Headers a dead letter on ``<topic>.dlq`` carries besides the original record's own:
#: where the record came from and why it could not be applied.
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_ERROR = "dlq-error"
DLQ_HEADERS = (DLQ_SOURCE_TOPIC, DLQ_SOURCE_PARTITION, DLQ_SOURCE_OFFSET, DLQ_ERROR)


class EventType(StrEnum):
    """What happened to a favourite."""

    ADDED = "favorite.added"
    REMOVED = "favorite.removed"


class Source(StrEnum):
    """Where an interaction came from."""

    DISCORD_SLASH = "discord-slash"
    DISCORD_PREFIX = "discord-prefix"
    API = "api"
    DASHBOARD = "dashboard"


class FavoriteEvent(BaseModel):
    """One favourite interaction as it travels on the topic (schema v1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    user_id: Snowflake
    user_name: UserName
    recipe_id: RecipeId
    guild_id: Snowflake | None = None
    source: Source = Source.API
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    trace_id: TraceId


class EventDecodeError(ValueError):
    """A record on the topic is not a valid schema-v1 event."""


def new_trace_id() -> str:
    """Make a fresh trace id (32 hex characters)."""
    return uuid.uuid4().hex


def encode_event(event: FavoriteEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Serialise an event to the record key, value and headers.

    Returns:
        ``(key, value, headers)`` ready for ``AIOKafkaProducer.send``.
    """
    value = event.model_dump_json().encode("utf-8")
    headers = [
        ("trace-id", event.trace_id.encode("ascii")),
        ("schema-version", SCHEMA_VERSION.encode("ascii")),
        ("content-type", CONTENT_TYPE.encode("ascii")),
    ]
    return event.user_id.encode("ascii"), value, headers


def decode_event(value: bytes | None) -> FavoriteEvent:
    """Parse a record value into an event.

    Raises:
        EventDecodeError: the value is empty, not UTF-8 JSON, or not schema v1; the
            message says which.
    """
    if not value:
        raise EventDecodeError("empty record value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventDecodeError(f"value is not UTF-8: {exc.reason}") from None
    try:
        event = FavoriteEvent.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise EventDecodeError(
            f"not a schema-v1 event: {where}: {first['msg']}"
            f" ({exc.error_count()} error(s))"
        ) from None
    if event.occurred_at.tzinfo is None:
        raise EventDecodeError("occurred_at has no time zone; UTC is required")
    return event


def header_value(headers: object, name: str) -> str | None:
    """Return one header of a consumed record as text, or ``None`` when absent."""
    if not isinstance(headers, list | tuple):
        return None
    for key, raw in headers:
        if key == name:
            return bytes(raw).decode("utf-8", errors="replace")
    return None


EventTypeName = Literal["favorite.added", "favorite.removed"]
