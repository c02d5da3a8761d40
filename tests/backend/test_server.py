"""The uvicorn server the backend runs: its access log and its frozen startup heap."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import httpx
import pytest

from backend.app import create_app
from backend.server import BackendServer, server_config
from pipeline_core.settings import Settings
from tests.backend.conftest import API_TOKEN, AUTH, favorite_body, unique_topic
from tests.backend.process import backend_env, run_backend

#: Bound on the in-process server starting and stopping.
SERVER_WAIT_S = 30.0


@pytest.mark.parametrize(
    ("extra_args", "logged"), [((), False), (("--access-log",), True)]
)
async def test_request_lines_are_logged_only_with_access_log(
    tmp_path: Path, kafka_bootstrap: str, extra_args: tuple[str, ...], logged: bool
) -> None:
    """uvicorn's one line per request appears with --access-log, not without."""
    env = backend_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        FAVORITES_TOPIC=unique_topic(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'favorites.db'}",
        API_TOKEN=API_TOKEN,
    )
    async with run_backend(tmp_path, env, *extra_args) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            response = await http.post(
                "/v1/favorites", json=favorite_body(), headers=AUTH
            )
        assert await backend.terminate() == 0
        log = backend.log_text()

    assert response.status_code == 202
    assert "event accepted" in log
    assert ('"POST /v1/favorites HTTP/1.1" 202' in log) is logged


async def test_a_running_server_keeps_its_startup_heap_frozen_until_shutdown(
    backend_settings: Settings,
) -> None:
    """While it serves, the startup objects are frozen; after shutdown, thawed."""
    gc.unfreeze()
    app = create_app(backend_settings)
    config = server_config(app, host="127.0.0.1", port=0, publish_timeout_seconds=5.0)
    started = asyncio.Event()
    server = BackendServer(config, on_started=lambda _port: started.set())
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_WAIT_S):
            await started.wait()
        frozen_while_serving = gc.get_freeze_count()
    finally:
        server.should_exit = True
        async with asyncio.timeout(SERVER_WAIT_S):
            await serving

    assert frozen_while_serving > 0
    assert gc.get_freeze_count() == 0
