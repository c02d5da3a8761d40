"""The broker goes away after the backend started: 503 in time, clean stop.

These tests start their own embedded broker (not the session's) and stop it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from pipeline_core.broker.embedded import EmbeddedBroker
from pipeline_core.settings import load_settings
from tests.backend.conftest import (
    API_TOKEN,
    AUTH,
    favorite_body,
    serve_in_process,
    unique_topic,
)
from tests.backend.process import backend_env, run_backend

#: The publish deadline these tests configure (seconds).
PUBLISH_TIMEOUT = 2
#: Bound on shutdown after SIGTERM: grace (deadline + 2) + flush (deadline + 5) + slack.
SHUTDOWN_BOUND_S = 2 * PUBLISH_TIMEOUT + 7 + 10

pytestmark = pytest.mark.slow


async def test_post_answers_503_with_retry_after_and_sigterm_still_stops_it(
    tmp_path: Path,
) -> None:
    """Broker stopped after start: POST is 503 + Retry-After; SIGTERM exits 0."""
    async with EmbeddedBroker() as broker:
        env = backend_env(
            KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            FAVORITES_TOPIC=unique_topic(),
            DATABASE_URL=f"sqlite:///{tmp_path / 'favorites.db'}",
            API_TOKEN=API_TOKEN,
            PUBLISH_TIMEOUT_SECONDS=str(PUBLISH_TIMEOUT),
        )
        async with run_backend(tmp_path, env) as backend:
            async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
                before = await http.post(
                    "/v1/favorites", json=favorite_body(), headers=AUTH
                )
                await broker.stop()
                after = await http.post(
                    "/v1/favorites", json=favorite_body(), headers=AUTH
                )
                ready = await http.get("/readyz")
            exit_code = await backend.terminate(timeout=SHUTDOWN_BOUND_S)

    assert before.status_code == 202
    assert after.status_code == 503
    assert after.headers["Retry-After"] == str(PUBLISH_TIMEOUT)
    assert "retry later" in after.json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["kafka"].startswith("unavailable")
    assert exit_code == 0


async def test_in_process_app_answers_503_and_its_lifespan_ends_in_bound(
    tmp_path: Path,
) -> None:
    """In process: after the broker stops, POST is 503 and the lifespan still ends."""
    async with EmbeddedBroker() as broker:
        settings = load_settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            favorites_topic=unique_topic(),
            database_url=f"sqlite:///{tmp_path / 'favorites.db'}",
            api_token=API_TOKEN,
            publish_timeout_seconds=PUBLISH_TIMEOUT,
        )
        app = create_app(settings)
        async with asyncio.timeout(SHUTDOWN_BOUND_S + 60):
            async with serve_in_process(app) as client:
                await broker.stop()
                response = await client.post(
                    "/v1/favorites", json=favorite_body(), headers=AUTH
                )
                metrics = (await client.get("/metrics")).text

    assert response.status_code == 503
    assert 'backend_publish_failures_total{reason="timeout"} 1.0' in metrics


async def test_publishing_resumes_after_the_broker_restarts(tmp_path: Path) -> None:
    """After the broker stops and starts again, the same app answers 202 again."""
    async with EmbeddedBroker() as broker:
        settings = load_settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            favorites_topic=unique_topic(),
            database_url=f"sqlite:///{tmp_path / 'favorites.db'}",
            api_token=API_TOKEN,
            publish_timeout_seconds=PUBLISH_TIMEOUT,
        )
        async with serve_in_process(create_app(settings)) as client:
            await broker.stop()
            during = await client.post(
                "/v1/favorites", json=favorite_body(), headers=AUTH
            )
            await broker.start()
            statuses: list[int] = []
            async with asyncio.timeout(60):
                while not statuses or statuses[-1] != 202:
                    response = await client.post(
                        "/v1/favorites", json=favorite_body(), headers=AUTH
                    )
                    statuses.append(response.status_code)

    assert during.status_code == 503
    assert statuses[-1] == 202
    assert set(statuses) <= {202, 503}
