"""Discord command to database row, through every real hop, exactly once."""

from __future__ import annotations

import pytest

from pipeline_core.events import decode_event, header_value
from recipe_pipeline.harness import PipelineUnderTest

pytestmark = pytest.mark.e2e


async def test_slash_add_lands_exactly_once(
    pipeline: PipelineUnderTest, pipeline_bot
) -> None:
    """/favorite add stores one row, from one applied event, marked discord-slash."""
    exchange = await pipeline_bot.send(
        "/favorite add recipe:12", user_id="1001", user_name="Ada"
    )

    assert exchange.error is None, exchange
    row = await pipeline.wait_favorite("1001", "12")
    assert row.source == "discord-slash"
    assert await pipeline.applied_count("1001", "12") == 1
