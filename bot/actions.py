"""What each command does, as plain functions of the backend client.

Commands and slash callbacks only gather who asked and with what, then call one of
these. A function returns the reply text on success and raises a
:class:`bot.backend_client.BackendError` otherwise; nothing is reported as saved or
removed unless the backend answered 202.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import replies
from bot.backend_client import BackendClient
from pipeline_core.events import Source


@dataclass(frozen=True)
class Invoker:
    """Who sent a command, and from where.

    Attributes:
        user_id: the Discord user's snowflake, as a decimal string.
        user_name: the display name, exactly as Discord gave it.
        guild_id: the server's snowflake, ``None`` in direct messages.
        trace_id: the trace id of this command, derived from its Discord id.
        source: slash or prefix.
    """

    user_id: str
    user_name: str
    guild_id: str | None
    trace_id: str
    source: Source


def trace_id_for(discord_id: int) -> str:
    """The trace id for an interaction or message id (stable, readable)."""
    return f"discord-{discord_id}"


async def save(backend: BackendClient, who: Invoker, recipe_id: str) -> str:
    """Add a favourite: check the recipe exists, then ask the backend to record it."""
    recipe = await backend.get_recipe(recipe_id, trace_id=who.trace_id)
    await backend.add_favorite(
        user_id=who.user_id,
        user_name=who.user_name,
        recipe_id=recipe.id,
        guild_id=who.guild_id,
        source=who.source,
        trace_id=who.trace_id,
    )
    return replies.saved(recipe)


async def unsave(backend: BackendClient, who: Invoker, recipe_id: str) -> str:
    """Remove a favourite: check the recipe exists, then ask the backend to."""
    recipe = await backend.get_recipe(recipe_id, trace_id=who.trace_id)
    await backend.remove_favorite(
        user_id=who.user_id, recipe_id=recipe.id, trace_id=who.trace_id
    )
    return replies.removed(recipe)


async def list_mine(backend: BackendClient, who: Invoker) -> str:
    """The invoker's stored favourites."""
    items = await backend.list_favorites(who.user_id, trace_id=who.trace_id)
    return replies.favourites(items)


async def search(backend: BackendClient, who: Invoker, query: str) -> str:
    """Recipes of the catalog matching ``query``."""
    recipes = await backend.search_recipes(query, trace_id=who.trace_id)
    return replies.search_results(query, recipes)
