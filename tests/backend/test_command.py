"""``recipe-pipeline backend`` as a real process: real uvicorn, real broker."""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pipeline_core.events import decode_event
from tests.backend.conftest import (
    API_TOKEN,
    AUTH,
    favorite_body,
    read_records,
    unique_topic,
)
from tests.backend.process import backend_env, run_backend, start_failure


def _env(
    tmp_path: Path, kafka_bootstrap: str, topic: str, **more: str | None
) -> dict[str, str]:
    variables: dict[str, str | None] = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "FAVORITES_TOPIC": topic,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'favorites.db'}",
        "API_TOKEN": API_TOKEN,
        "PUBLISH_TIMEOUT_SECONDS": "5",
    }
    variables.update(more)
    return backend_env(**variables)


def _token_file_facts(path: Path) -> tuple[int, str]:
    """The permission bits and the token of a token file."""
    return stat.S_IMODE(path.stat().st_mode), path.read_text("ascii").strip()


async def test_sigterm_right_after_a_202_leaves_that_record_on_the_topic(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A 202 followed at once by SIGTERM: clean exit 0, and the record is there."""
    topic = unique_topic()
    async with run_backend(tmp_path, _env(tmp_path, kafka_bootstrap, topic)) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            response = await http.post(
                "/v1/favorites", json=favorite_body(), headers=AUTH
            )
        exit_code = await backend.terminate()

    ack = response.json()
    records = await read_records(kafka_bootstrap, topic, 1)
    assert response.status_code == 202
    assert exit_code == 0
    assert [(r.partition, r.offset) for r in records] == [
        (ack["partition"], ack["offset"])
    ]
    assert str(decode_event(records[0].value).event_id) == ack["event_id"]


async def test_generated_token_is_in_a_private_file_and_never_logged(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Without API_TOKEN: a 0600 token file in the ready file; the log never has it."""
    env = _env(tmp_path, kafka_bootstrap, unique_topic(), API_TOKEN=None)
    async with run_backend(tmp_path, env, log_level="DEBUG") as backend:
        token_file = Path(backend.ready["api_token_file"])
        mode, token = await asyncio.to_thread(_token_file_facts, token_file)
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            accepted = await http.post(
                "/v1/favorites",
                json=favorite_body(),
                headers={"Authorization": f"Bearer {token}"},
            )
            refused = await http.post(
                "/v1/favorites", json=favorite_body(), headers=AUTH
            )
        exit_code = await backend.terminate()

    assert mode == 0o600
    assert (accepted.status_code, refused.status_code) == (202, 401)
    assert exit_code == 0
    assert token not in await asyncio.to_thread(backend.log_text)
    assert not await asyncio.to_thread(token_file.exists)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_one_megabyte_body_answers_413_over_real_uvicorn(
    tmp_path: Path, kafka_bootstrap: str, chunked: bool
) -> None:
    """Through uvicorn, a 1 MiB body (chunked or with Content-Length) is 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1024):
            yield b" " * 1024

    content = chunks() if chunked else b" " * (1024 * 1024)
    env = _env(tmp_path, kafka_bootstrap, unique_topic())
    async with run_backend(tmp_path, env) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            response = await http.post(
                "/v1/favorites",
                content=content,
                headers={**AUTH, "Content-Type": "application/json"},
            )
        await backend.terminate()

    assert response.status_code == 413


async def test_unreachable_kafka_fails_the_start_with_a_one_line_reason(
    tmp_path: Path,
) -> None:
    """With nothing listening at KAFKA_BOOTSTRAP_SERVERS the command exits 1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = _env(tmp_path, f"127.0.0.1:{closed_port}", unique_topic())

    exit_code, stderr = await start_failure(tmp_path, env)

    assert exit_code == 1
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("recipe-pipeline backend: the backend did not start")
    assert f"127.0.0.1:{closed_port}" in last_line


async def test_port_in_use_fails_the_start_with_a_one_line_reason(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """A port another socket listens on makes the command exit 1, saying so."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, kafka_bootstrap, unique_topic())

        exit_code, stderr = await start_failure(tmp_path, env, port=port)

    assert exit_code == 1
    last_line = stderr.strip().splitlines()[-1]
    assert f"could not listen on 127.0.0.1:{port}" in last_line


async def test_sigint_stops_the_backend_with_exit_0(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Ctrl-C (SIGINT) is a clean stop too: exit code 0, a ready file was written."""
    env = _env(tmp_path, kafka_bootstrap, unique_topic())
    async with run_backend(tmp_path, env) as backend:
        exit_code = await backend.terminate(sig=signal.SIGINT)

    assert backend.url.startswith("http://127.0.0.1:")
    assert exit_code == 0
