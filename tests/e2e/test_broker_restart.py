"""The broker restarted under load: nothing the API acknowledged is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pipeline_core.broker.embedded import EmbeddedBroker
from pipeline_core.stack.stack import StackConfig
from recipe_pipeline.harness import Ack, HopTimeout, HostedStack, PipelineUnderTest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of this test's own: restarting it disturbs no other test."""
    async with EmbeddedBroker(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture
def restart_pipeline(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[PipelineUnderTest]:
    """The real backend and consumer on ``own_broker``."""
    host = HostedStack(
        StackConfig(
            data_dir=tmp_path / "stack",
            topic="restart-favorites",
            group="restart-store",
            bootstrap=own_broker.bootstrap_servers,
        )
    )
    try:
        under_test = PipelineUnderTest(host.start(), host=host)
        yield under_test
        under_test.close()
    finally:
        host.stop()


async def test_broker_restart_under_load_loses_no_acknowledged_favourite(
    own_broker: EmbeddedBroker, restart_pipeline: PipelineUnderTest
) -> None:
    """Favourites sent before, during and after a broker restart: every one the API
    acknowledged (202) is stored exactly once; the others were refused (503)."""
    pipeline = restart_pipeline
    acknowledged: list[tuple[str, Ack]] = []
    refused = 0
    stop_sending = asyncio.Event()
    progress = asyncio.Condition()

    async def acknowledged_at_least(count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout), progress:
            await progress.wait_for(lambda: len(acknowledged) >= count)

    async def send_until_stopped() -> None:
        nonlocal refused
        number = 0
        while not stop_sending.is_set() and number < 2000:
            number += 1
            user = str(3_000_000 + number)
            try:
                acknowledged.append((user, await pipeline.add_favorite(user, "9")))
            except HopTimeout:
                refused += 1
            async with progress:
                progress.notify_all()

    sender = asyncio.create_task(send_until_stopped())
    await acknowledged_at_least(50, timeout=30)
    await own_broker.stop()
    await own_broker.start()
    await acknowledged_at_least(len(acknowledged) + 50, timeout=60)
    stop_sending.set()
    await sender

    await pipeline.wait_lag_zero(timeout=120)
    for user, ack in acknowledged:
        row = await pipeline.stored_favorite(user, "9")
        assert row is not None, await pipeline.diagnose(user, "9", ack=ack)
        assert row.event_id == ack.event_id
        assert await pipeline.applied_count(user, "9") == 1
