"""The real bot through the local gateway against the real pipeline.

One stack per module: the session's real Kafka broker, the real backend (uvicorn)
and the real storing consumer as processes, on a topic, group and SQLite database
of this module's own. Each test uses its own user ids, so tests do not see each
other's favourites.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from pipeline_core.stack import Stack
from pipeline_core.stack.stack import StackConfig
from tests.bot.conftest import API_TOKEN, bot_on_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

#: Bound on waiting for the consumer to store (or delete) a favourite.
STORE_WAIT_S = 30.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[Stack]:
    suffix = uuid.uuid4().hex[:10]
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("bot-stack"),
        topic=f"bot-favorites-{suffix}",
        group=f"bot-store-{suffix}",
        api_token=SecretStr(API_TOKEN),
        bootstrap=kafka_bootstrap,
        partitions=1,
    )
    async with Stack(config) as running:
        yield running


def _rows(database_url: str, user_id: str) -> list[tuple[str, bytes]]:
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.text_factory = bytes
        rows = conn.execute(
            "SELECT recipe_id, user_name FROM favorite WHERE user_id = ?",
            (user_id,),
        ).fetchall()
    return [(recipe.decode(), name) for recipe, name in rows]


async def stored(stack: Stack, user_id: str, expected: int) -> list[tuple[str, bytes]]:
    """The user's stored rows once there are ``expected`` of them (bounded wait)."""
    async with asyncio.timeout(STORE_WAIT_S):
        while True:
            rows = await asyncio.to_thread(_rows, stack.database_url, user_id)
            if len(rows) == expected:
                return rows
            await asyncio.sleep(0.1)


def _user() -> str:
    return str(10**17 + uuid.uuid4().int % 10**17)


async def test_prefix_save_is_stored_and_reply_names_the_recipe(stack: Stack) -> None:
    """!save 1 stores the favourite; the reply names Shakshuka."""
    user = _user()
    async with bot_on_gateway(stack.backend_url) as gateway:
        exchange = await gateway.send("!save 1", user_id=user, user_name="Ada")

    assert exchange.replies == ["⭐ Saved **Shakshuka** (#1) to your favourites."]
    assert [recipe for recipe, _ in await stored(stack, user, 1)] == ["1"]


async def test_slash_add_is_stored_and_reply_names_the_recipe(stack: Stack) -> None:
    """/favorite add recipe:2 stores the favourite; one follow-up names the recipe."""
    user = _user()
    async with bot_on_gateway(stack.backend_url) as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:2", user_id=user, user_name="Ada"
        )

    assert exchange.deferred
    assert exchange.followups == 1
    assert "Chicken tikka masala" in exchange.replies[0]
    assert [recipe for recipe, _ in await stored(stack, user, 1)] == ["2"]


@pytest.mark.parametrize("digits", [17, 18, 19])
async def test_long_user_ids_are_stored_exactly(stack: Stack, digits: int) -> None:
    """User ids of 17 to 19 digits are stored as the same decimal string."""
    user = str(10 ** (digits - 1) + uuid.uuid4().int % 10 ** (digits - 1))
    async with bot_on_gateway(stack.backend_url) as gateway:
        await gateway.send("/favorite add recipe:3", user_id=user, user_name="Ada")

    assert len(await stored(stack, user, 1)) == 1


async def test_unicode_name_arrives_byte_identical(stack: Stack) -> None:
    """A name with accents, emoji and a ZWJ sequence is stored byte for byte."""
    user = _user()
    name = "Zoë Ångström 🍜 👩\u200d👩\u200d👧"
    async with bot_on_gateway(stack.backend_url) as gateway:
        await gateway.send("!save 4", user_id=user, user_name=name)

    [(_, stored_name)] = await stored(stack, user, 1)
    assert stored_name == name.encode("utf-8")


async def test_unknown_recipe_gets_its_own_reply_and_stores_nothing(
    stack: Stack,
) -> None:
    """An id not in the catalog is answered 'can't find' and nothing is published."""
    user = _user()
    async with bot_on_gateway(stack.backend_url) as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:987654", user_id=user, user_name="Ada"
        )
        listed = await gateway.send("!favorites", user_id=user, user_name="Ada")

    assert "can't find that recipe" in exchange.replies[0]
    assert "no favourites yet" in listed.replies[0]


async def test_add_list_remove_through_slash_and_prefix(stack: Stack) -> None:
    """Saved favourites are listed, and an unsave removes one from the store."""
    user = _user()
    async with bot_on_gateway(stack.backend_url) as gateway:
        await gateway.send("!save 5", user_id=user, user_name="Ada")
        await gateway.send("/favorite add recipe:6", user_id=user, user_name="Ada")
        await stored(stack, user, 2)
        listed = await gateway.send("/favorite list", user_id=user, user_name="Ada")
        removed = await gateway.send("!unsave 5", user_id=user, user_name="Ada")
        remaining = await stored(stack, user, 1)
        again = await gateway.send("!favorites", user_id=user, user_name="Ada")

    assert "(#5)" in listed.replies[0]
    assert "(#6)" in listed.replies[0]
    assert removed.replies[0].startswith("🗑️ Removed")
    assert [recipe for recipe, _ in remaining] == ["6"]
    assert "(#6)" in again.replies[0]
    assert "(#5)" not in again.replies[0]


async def test_recipe_search_lists_matches(stack: Stack) -> None:
    """/recipe search finds catalog recipes by title."""
    async with bot_on_gateway(stack.backend_url) as gateway:
        exchange = await gateway.send(
            "/recipe search query:shakshuka", user_id=_user(), user_name="Ada"
        )

    assert "#1 **Shakshuka**" in exchange.replies[0]


def _discord_cli(backend_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BACKEND_URL": backend_url, "API_TOKEN": API_TOKEN, "PATH": "/usr/bin"}
    return subprocess.run(
        [sys.executable, "-m", "recipe_pipeline", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent,
        check=False,
    )


async def test_discord_cli_saves_and_exits_zero(stack: Stack) -> None:
    """`recipe-pipeline discord "!save 7"` prints the reply and exits 0."""
    user = _user()
    result = await asyncio.to_thread(
        _discord_cli,
        stack.backend_url,
        "discord",
        "!save 7",
        "--user-id",
        user,
        "--user-name",
        "Ada",
    )

    assert result.returncode == 0, result.stderr
    assert "Saved" in result.stdout
    assert len(await stored(stack, user, 1)) == 1
