"""Discord command to database row, through every real hop, exactly once.

The broker, backend, consumer, database and bot are the real ones (see the
``pipeline`` and ``pipeline_bot`` fixtures of the package's pytest plugin).
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from pipeline_core.gateway import LocalGateway
from recipe_pipeline.harness import PipelineUnderTest

pytestmark = pytest.mark.e2e

_user_ids = itertools.count(1_000_001)


def new_user() -> str:
    """A user id no other test of the module uses."""
    return str(next(_user_ids))


async def test_slash_add_lands_exactly_once(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """/favorite add stores one row, from one applied event, marked discord-slash."""
    user = new_user()

    exchange = await pipeline_bot.send(
        "/favorite add recipe:12", user_id=user, user_name="Ada"
    )

    assert exchange.error is None, exchange
    assert exchange.deferred
    assert exchange.followups == 1
    row = await pipeline.wait_favorite(user, "12")
    assert row.source == "discord-slash"
    assert row.user_name == "Ada"
    assert await pipeline.applied_count(user, "12") == 1


async def test_slash_remove_deletes_the_row(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """/favorite remove after /favorite add leaves no row."""
    user = new_user()
    await pipeline_bot.send("/favorite add recipe:7", user_id=user, user_name="Bo")
    await pipeline.wait_favorite(user, "7")

    exchange = await pipeline_bot.send(
        "/favorite remove recipe:7", user_id=user, user_name="Bo"
    )

    assert exchange.error is None, exchange
    await pipeline.wait_favorite_gone(user, "7")


async def test_slash_list_shows_stored_titles(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """/favorite list replies with the stored favourite's catalog title."""
    user = new_user()
    await pipeline.add_favorite(user, "3", user_name="Cy")
    await pipeline.wait_favorite(user, "3")
    [listed] = await pipeline.listed_favorites(user)

    exchange = await pipeline_bot.send("/favorite list", user_id=user, user_name="Cy")

    assert listed["title"] in exchange.replies[-1]


async def test_prefix_save_unsave_and_list(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """!save stores (source discord-prefix), !favorites lists it, !unsave removes."""
    user = new_user()

    await pipeline_bot.send("!save 21", user_id=user, user_name="Dee")
    row = await pipeline.wait_favorite(user, "21")
    listing = await pipeline_bot.send("!favorites", user_id=user, user_name="Dee")
    await pipeline_bot.send("!unsave 21", user_id=user, user_name="Dee")

    assert row.source == "discord-prefix"
    assert "#21" in listing.replies[-1]
    await pipeline.wait_favorite_gone(user, "21")


async def test_unknown_recipe_is_refused_and_nothing_is_published(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """A recipe outside the catalog gets an error reply and never reaches the DB."""
    user = new_user()

    exchange = await pipeline_bot.send("!save 999999", user_id=user, user_name="Eve")
    await pipeline.add_favorite(user, "5")
    await pipeline.wait_favorite(user, "5")
    await pipeline.wait_lag_zero()

    assert exchange.replies
    assert await pipeline.stored_favorite(user, "999999") is None
    assert await pipeline.applied_count(user, "999999") == 0


async def test_rapid_add_remove_sequence_ends_in_the_last_state(
    pipeline: PipelineUnderTest,
) -> None:
    """Twenty alternating adds and removes, sent back to back, end as the last one
    says: one user's events keep their order through the partition."""
    user = new_user()
    acks = []
    for step in range(20):
        if step % 2 == 0:
            acks.append(await pipeline.add_favorite(user, "30"))
        else:
            acks.append(await pipeline.remove_favorite(user, "30"))
    final = await pipeline.add_favorite(user, "30")

    row = await pipeline.wait_favorite(user, "30", ack=final)

    assert row.event_id == final.event_id
    assert len({ack.partition for ack in [*acks, final]}) == 1


async def test_many_users_at_once(pipeline: PipelineUnderTest) -> None:
    """Fifty users adding three favourites each, concurrently, all land once."""
    users = [new_user() for _ in range(50)]
    recipes = ["1", "2", "4"]

    acks = await asyncio.gather(
        *(pipeline.add_favorite(u, r) for u in users for r in recipes)
    )
    await pipeline.wait_lag_zero(timeout=60)

    assert len({(a.partition, a.offset) for a in acks}) == 150
    for user in random.Random(7).sample(users, 10):
        for recipe in recipes:
            assert await pipeline.stored_favorite(user, recipe) is not None
            assert await pipeline.applied_count(user, recipe) == 1


async def test_names_and_ids_at_their_limits(
    pipeline: PipelineUnderTest, pipeline_bot: LocalGateway
) -> None:
    """A 20-digit user id and a 32-character Unicode name survive every hop."""
    user = "18446744073709551615"
    name = "Zoë 🍜 Ünïcödé-Ñame_with_32chr!"[:32]

    exchange = await pipeline_bot.send(
        "/favorite add recipe:8", user_id=user, user_name=name
    )
    row = await pipeline.wait_favorite(user, "8")

    assert exchange.error is None, exchange
    assert row.user_id == user
    assert row.user_name == name
