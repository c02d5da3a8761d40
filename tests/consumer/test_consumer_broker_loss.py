"""The consumer process stops cleanly on a signal when its broker is gone or slow.

Each test owns its broker (an :class:`EmbeddedBroker`), so killing or pausing it
touches nobody else's tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_core.broker.embedded import EmbeddedBroker
from pipeline_core.stack.topics import ensure_topics
from pipeline_core.storage import Favorite, create_schema, make_engine
from tests.consumer.conftest import PARTITIONS, Pipeline, event, produce, wait_until

pytestmark = pytest.mark.slow

#: The consumer's --stop-timeout in these tests; its exit is awaited for at most
#: this plus EXIT_MARGIN_S seconds.
STOP_TIMEOUT_S = 5.0
EXIT_MARGIN_S = 20.0


@dataclass
class OwnBroker:
    broker: EmbeddedBroker
    pipeline: Pipeline


@pytest.fixture
async def own(tmp_path: Path) -> AsyncIterator[OwnBroker]:
    """A broker of this test's own, with a topic and database on it."""
    broker = EmbeddedBroker(tmp_path / "kafka")
    await broker.start()
    try:
        bootstrap = broker.bootstrap_servers
        suffix = uuid.uuid4().hex[:10]
        topic = f"favs-{suffix}"
        await ensure_topics(
            bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS, timeout=30
        )
        url = f"sqlite:///{tmp_path / 'favorites.db'}"
        engine = make_engine(url)
        create_schema(engine)
        try:
            yield OwnBroker(
                broker, Pipeline(bootstrap, topic, f"store-{suffix}", url, engine)
            )
        finally:
            engine.dispose()
    finally:
        pid = broker.pid
        if broker.running and pid is not None:
            os.kill(pid, signal.SIGCONT)  # in case a test paused it
        await broker.close()


async def start_consumer(
    pipeline: Pipeline, tmp_path: Path
) -> tuple[asyncio.subprocess.Process, Path]:
    """Start ``python -m recipe_pipeline consumer``; return it once ready."""
    ready_file = tmp_path / "consumer.ready.json"
    log_path = tmp_path / "consumer.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "recipe_pipeline",
            "consumer",
            "--ready-file",
            str(ready_file),
            "--stop-timeout",
            str(STOP_TIMEOUT_S),
            env=pipeline.env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    await wait_until(
        lambda: ready_file.exists() or process.returncode is not None,
        60,
        "the consumer's ready file",
    )
    assert process.returncode is None, log_path.read_text()
    json.loads(ready_file.read_text())
    return process, log_path


async def stop_and_wait(
    process: asyncio.subprocess.Process, signum: int, log_path: Path
) -> tuple[int, str]:
    """Send ``signum``; return the exit code and the log. Fails (and kills the
    process) if it has not exited within the stop timeout plus a margin."""
    process.send_signal(signum)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S + EXIT_MARGIN_S):
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        log = await asyncio.to_thread(log_path.read_text)
        pytest.fail(f"no exit after the signal:\n{log}")
    return code, await asyncio.to_thread(log_path.read_text)


async def consume_some(
    own: OwnBroker, tmp_path: Path
) -> tuple[asyncio.subprocess.Process, Path]:
    await produce(own.pipeline, [event(user=str(500 + n)) for n in range(50)])
    process, log_path = await start_consumer(own.pipeline, tmp_path)
    await wait_until(lambda: own.pipeline.count(Favorite) == 50, 60, "50 rows")
    return process, log_path


def assert_clean_stop(code: int, log: str) -> None:
    """Exit 0, no traceback, no client left unclosed."""
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "Unclosed" not in log, log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_after_the_broker_died_stops_cleanly(
    own: OwnBroker, tmp_path: Path, signum: int
) -> None:
    """Broker killed, then SIGTERM/SIGINT: exit 0 within the stop timeout, every
    client closed, no traceback, and one line saying the broker is unreachable."""
    process, log_path = await consume_some(own, tmp_path)
    try:
        await own.broker.kill()
        code, log = await stop_and_wait(process, signum, log_path)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert_clean_stop(code, log)
    assert log.count("unreachable") == 1, log


async def test_sigterm_while_the_broker_is_paused_stops_cleanly(
    own: OwnBroker, tmp_path: Path
) -> None:
    """Broker paused (SIGSTOP: it keeps its sockets but answers nothing), then
    SIGTERM: exit 0 within the stop timeout, every client closed, no traceback."""
    process, log_path = await consume_some(own, tmp_path)
    pid = own.broker.pid
    assert pid is not None
    try:
        os.kill(pid, signal.SIGSTOP)
        code, log = await stop_and_wait(process, signal.SIGTERM, log_path)
    finally:
        os.kill(pid, signal.SIGCONT)
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert_clean_stop(code, log)
    assert log.count("unreachable") == 1, log
