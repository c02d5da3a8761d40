"""Fixtures for the bot tests: the real bot on the local gateway.

Backends here are real HTTP servers on 127.0.0.1: a closed port we own for "backend
down", a small uvicorn app for slow or failing answers, and the real pipeline (in
``test_bot_pipeline.py``) for the end-to-end behaviour.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from bot.app import RecipeBot, build_bot
from bot.backend_client import BackendClient, RetryPolicy
from pipeline_core.gateway import LocalGateway
from pipeline_core.settings import load_settings

API_TOKEN = "bot-test-token-3c9e51aa7f"
#: Fast retries so failure tests stay quick; still bounded and still retried.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections: bound by us, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def make_bot(backend_url: str, retry: RetryPolicy = FAST_RETRY) -> RecipeBot:
    """The real bot for ``backend_url``, with a fast retry policy."""
    settings = load_settings(backend_url=backend_url, api_token=API_TOKEN)
    return build_bot(
        settings,
        backend_factory=lambda: BackendClient(backend_url, API_TOKEN, retry=retry),
    )


@asynccontextmanager
async def bot_on_gateway(
    backend_url: str, retry: RetryPolicy = FAST_RETRY
) -> AsyncIterator[LocalGateway]:
    """The real bot logged in to a local gateway."""
    async with LocalGateway(make_bot(backend_url, retry)) as gateway:
        yield gateway


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with real uvicorn on a free 127.0.0.1 port; yield its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
