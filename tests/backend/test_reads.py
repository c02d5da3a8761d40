"""The read side: catalog, stored favourites, health, readiness and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import Session, func, select

from backend.catalog import load_catalog, store_catalog
from pipeline_core.settings import Settings
from pipeline_core.storage import Favorite, Recipe, create_schema, make_engine
from tests.backend.conftest import AUTH, favorite_body


def test_shipped_catalog_has_at_least_100_recipes_with_ids_1_to_n() -> None:
    """The packaged catalog loads, with ids "1".."N" and N >= 100."""
    catalog = load_catalog()

    assert len(catalog) >= 100
    assert [r.id for r in catalog.all()] == [str(n) for n in range(1, len(catalog) + 1)]
    assert len({r.cuisine for r in catalog.all()}) >= 20


def test_storing_the_catalog_twice_keeps_one_row_per_recipe(tmp_path: Path) -> None:
    """store_catalog is idempotent: a second run leaves the same rows."""
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    catalog = load_catalog()
    try:
        create_schema(engine)
        store_catalog(engine, catalog)
        store_catalog(engine, catalog)
        with Session(engine) as session:
            count = session.exec(select(func.count()).select_from(Recipe)).one()
    finally:
        engine.dispose()

    assert count == len(catalog)


async def test_recipe_search_matches_every_word_case_insensitively(
    client: httpx.AsyncClient,
) -> None:
    """GET /v1/recipes?q= finds recipes containing all words, public (no token)."""
    response = await client.get("/v1/recipes", params={"q": "THAI curry"})

    titles = [r["title"] for r in response.json()["recipes"]]
    assert response.status_code == 200
    assert "Green curry with chicken" in titles
    assert all("curry" in t.lower() or "curry" in str(t) for t in titles)
    assert response.json()["count"] == len(titles)


async def test_recipe_by_id_and_unknown_recipe(client: httpx.AsyncClient) -> None:
    """GET /v1/recipes/{id} answers the recipe; an unknown id answers 404."""
    found = await client.get("/v1/recipes/8")
    missing = await client.get("/v1/recipes/424242")

    assert found.status_code == 200
    assert found.json()["title"] == "Spaghetti carbonara"
    assert missing.status_code == 404


async def test_user_favorites_come_newest_first_with_titles(
    client: httpx.AsyncClient, backend_settings: Settings
) -> None:
    """Stored favourites are listed newest first, joined with catalog titles."""
    engine = make_engine(backend_settings.database_url)
    now = datetime.now(UTC)
    try:
        with Session(engine) as session:
            for age, recipe_id in [(3, "1"), (1, "8"), (2, "23")]:
                session.add(
                    Favorite(
                        user_id="555",
                        recipe_id=recipe_id,
                        user_name="Cy",
                        source="api",
                        event_id=f"00000000-0000-0000-0000-00000000000{age}",
                        trace_id=f"trace-0000000{age}",
                        occurred_at=now - timedelta(minutes=age),
                    )
                )
            session.commit()
    finally:
        engine.dispose()

    response = await client.get("/v1/users/555/favorites", headers=AUTH)

    listed = [(f["recipe_id"], f["title"]) for f in response.json()["favorites"]]
    assert listed == [
        ("8", "Spaghetti carbonara"),
        ("23", "Pad thai"),
        ("1", "Shakshuka"),
    ]


async def test_healthz_and_readyz_answer_ok_with_broker_and_database(
    client: httpx.AsyncClient,
) -> None:
    """With Kafka and SQLite up, /healthz is ok and /readyz is ready for both."""
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "kafka": "ok", "database": "ok"}


async def test_metrics_count_requests_by_route_and_publish_latency(
    client: httpx.AsyncClient,
) -> None:
    """/metrics shows requests by route template and status, and publish latency."""
    await client.post("/v1/favorites", json=favorite_body(), headers=AUTH)
    await client.get("/v1/recipes/999999")

    text = (await client.get("/metrics")).text

    assert (
        'backend_http_requests_total{method="POST",route="/v1/favorites",status="202"}'
        " 1.0" in text
    )
    assert (
        'backend_http_requests_total{method="GET",route="/v1/recipes/{recipe_id}",'
        'status="404"} 1.0' in text
    )
    assert "backend_publish_seconds_count 1.0" in text
    assert (
        "backend_publish_failures_total" in text or "backend_publish_failures" in text
    )


async def test_unusable_database_answers_503_not_500(
    client: httpx.AsyncClient, backend_settings: Settings
) -> None:
    """A database that lost its favourites table answers 503 with Retry-After."""
    engine = make_engine(backend_settings.database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE favorite")
    finally:
        engine.dispose()

    response = await client.get("/v1/users/1/favorites", headers=AUTH)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "favorite" not in response.json()["detail"]
