"""Bad input gets a clear answer and publishes nothing; good edge cases pass intact."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session

from backend.app import create_app
from pipeline_core.events import decode_event
from pipeline_core.settings import Settings
from pipeline_core.storage import Favorite, make_engine
from tests.backend.conftest import (
    AUTH,
    end_offsets,
    favorite_body,
    read_records,
)


async def assert_topic_empty(bootstrap: str, topic: str) -> None:
    """Nothing was published to ``topic``."""
    assert set((await end_offsets(bootstrap, topic)).values()) == {0}


@pytest.mark.parametrize(
    "user_id",
    ["-1", "1" * 21, "12a", "", " 12", "\uff11\uff12", "12\n", 12],
    ids=[
        "negative",
        "21-digits",
        "letters",
        "empty",
        "space",
        "fullwidth",
        "newline",
        "number",
    ],
)
async def test_user_id_that_is_not_1_to_20_digits_answers_422(
    client: httpx.AsyncClient,
    backend_settings: Settings,
    kafka_bootstrap: str,
    user_id: object,
) -> None:
    """A user id that is not a string of 1-20 ASCII digits is refused, unpublished."""
    response = await client.post(
        "/v1/favorites", json=favorite_body(user_id=user_id), headers=AUTH
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_id"]
    await assert_topic_empty(kafka_bootstrap, backend_settings.favorites_topic)


async def test_19_digit_user_id_reaches_the_topic_and_reads_back_exactly(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """A 19-digit id is kept as a string: exact on the topic and in the read API."""
    user_id = "9223372036854775807"
    response = await client.post(
        "/v1/favorites", json=favorite_body(user_id=user_id), headers=AUTH
    )
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 1)
    event = decode_event(records[0].value)
    _store_as_consumer_would(backend_settings, event.user_id, event.recipe_id)
    listed = await client.get(f"/v1/users/{user_id}/favorites", headers=AUTH)

    assert response.status_code == 202
    assert records[0].key == user_id.encode("ascii")
    assert json.loads(records[0].value)["user_id"] == user_id
    assert listed.json()["user_id"] == user_id
    assert [f["recipe_id"] for f in listed.json()["favorites"]] == ["8"]


def _store_as_consumer_would(settings: Settings, user_id: str, recipe_id: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            session.add(
                Favorite(
                    user_id=user_id,
                    recipe_id=recipe_id,
                    user_name="x",
                    source="api",
                    event_id="00000000-0000-0000-0000-000000000001",
                    trace_id="trace-000000001",
                    occurred_at=datetime.now(UTC),
                )
            )
            session.commit()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "user_name",
    ["Zoë Ångström-Núñez", "chef 🍜🔥", "family 👩‍👩‍👧‍👦 and 🏳️‍🌈", "e\u0301 combining"],
    ids=["accents", "emoji", "zwj-sequences", "combining-mark"],
)
async def test_user_name_reaches_the_topic_byte_identical(
    client: httpx.AsyncClient,
    backend_settings: Settings,
    kafka_bootstrap: str,
    user_name: str,
) -> None:
    """Accents, emoji and ZWJ sequences are published as the same UTF-8 bytes."""
    response = await client.post(
        "/v1/favorites", json=favorite_body(user_name=user_name), headers=AUTH
    )
    records = await read_records(kafka_bootstrap, backend_settings.favorites_topic, 1)

    assert response.status_code == 202
    assert user_name.encode("utf-8") in records[0].value
    assert json.loads(records[0].value)["user_name"] == user_name


async def test_unknown_recipe_answers_404_and_publishes_nothing(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """A recipe id that is not in the catalog is 404, with a hint where to look."""
    response = await client.post(
        "/v1/favorites", json=favorite_body(recipe_id="999999"), headers=AUTH
    )

    assert response.status_code == 404
    assert "GET /v1/recipes" in response.json()["detail"]
    await assert_topic_empty(kafka_bootstrap, backend_settings.favorites_topic)


@pytest.mark.parametrize("missing", ["user_id", "user_name", "recipe_id"])
async def test_missing_field_answers_422_naming_it(
    client: httpx.AsyncClient, missing: str
) -> None:
    """A body without a required field is refused and the field is named."""
    body = favorite_body()
    del body[missing]

    response = await client.post("/v1/favorites", json=body, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", missing]


async def test_unknown_field_answers_422_naming_it(client: httpx.AsyncClient) -> None:
    """A field the API does not know is refused, not silently dropped."""
    response = await client.post(
        "/v1/favorites", json=favorite_body(is_admin=True), headers=AUTH
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "is_admin"]


async def test_non_json_body_answers_422(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """A body that is not JSON is refused as invalid input."""
    response = await client.post(
        "/v1/favorites",
        content=b"user_id=1&recipe_id=2",
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    await assert_topic_empty(kafka_bootstrap, backend_settings.favorites_topic)


async def test_one_megabyte_body_answers_413(
    client: httpx.AsyncClient, backend_settings: Settings, kafka_bootstrap: str
) -> None:
    """A 1 MB body (with Content-Length) is refused with 413."""
    body = json.dumps(favorite_body(user_name="x" * 1_000_000)).encode()

    response = await client.post(
        "/v1/favorites",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert "16384 bytes" in response.json()["detail"]
    await assert_topic_empty(kafka_bootstrap, backend_settings.favorites_topic)


async def test_chunked_body_over_the_limit_answers_413(
    client: httpx.AsyncClient,
) -> None:
    """A body streamed without Content-Length is cut off at the limit with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    response = await client.post(
        "/v1/favorites",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-123456"}, {"Authorization": "Basic a"}],
    ids=["no-token", "wrong-token", "not-bearer"],
)
async def test_write_without_the_right_token_answers_401(
    client: httpx.AsyncClient,
    backend_settings: Settings,
    kafka_bootstrap: str,
    headers: dict[str, str],
) -> None:
    """POST without the bearer token is 401, names no secret, publishes nothing."""
    response = await client.post("/v1/favorites", json=favorite_body(), headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "test-token" not in response.text
    await assert_topic_empty(kafka_bootstrap, backend_settings.favorites_topic)


async def test_malformed_body_without_token_answers_401_not_422(
    client: httpx.AsyncClient,
) -> None:
    """The token is checked before the body is parsed: no token, no validation."""
    response = await client.post(
        "/v1/favorites",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 401


async def test_reading_favorites_needs_the_token(client: httpx.AsyncClient) -> None:
    """GET /v1/users/{id}/favorites is a /v1 call outside the catalog: 401 without."""
    response = await client.get("/v1/users/1/favorites")

    assert response.status_code == 401


async def test_invalid_trace_id_answers_422(client: httpx.AsyncClient) -> None:
    """An X-Trace-Id with characters outside the allowed set is refused."""
    response = await client.post(
        "/v1/favorites",
        json=favorite_body(),
        headers={**AUTH, "X-Trace-Id": "bad trace id with spaces"},
    )

    assert response.status_code == 422
    assert "X-Trace-Id" in response.json()["detail"]
    assert response.headers["X-Trace-Id"] != "bad trace id with spaces"


async def test_app_refuses_to_build_without_a_token(
    backend_settings: Settings,
) -> None:
    """Without API_TOKEN and without api_token, create_app says what to set."""
    settings = backend_settings.model_copy(update={"api_token": None})

    with pytest.raises(ValueError, match="API_TOKEN"):
        create_app(settings)
