"""The text of the bot's replies, built by plain functions from backend answers.

Replies stay under Discord's 2,000-character message limit. Error replies start with
:data:`ERROR_MARK`, which is how ``recipe-pipeline discord`` tells a failed command
from a successful one.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.backend_client import Favorite, Recipe

#: Discord refuses messages longer than this.
MESSAGE_LIMIT = 2000
#: How many recipes a search reply lists.
SEARCH_LIMIT = 10
#: The first characters of every error reply.
ERROR_MARK = "⚠️ "


def saved(recipe: Recipe) -> str:
    """The reply once the backend accepted a new favourite."""
    return f"⭐ Saved **{recipe.title}** (#{recipe.id}) to your favourites."


def removed(recipe: Recipe) -> str:
    """The reply once the backend accepted the removal of a favourite."""
    return f"🗑️ Removed **{recipe.title}** (#{recipe.id}) from your favourites."


def favourites(items: Sequence[Favorite]) -> str:
    """The user's favourites, newest first, or how to add the first one."""
    if not items:
        return (
            "You have no favourites yet. Add one with `/favorite add` or"
            " `!save <recipe number>`."
        )
    lines = [f"Your favourites ({len(items)}):"]
    lines.extend(f"• **{_title(item)}** (#{item.recipe_id})" for item in items)
    return clamp("\n".join(lines))


def search_results(query: str, recipes: Sequence[Recipe]) -> str:
    """Recipes matching ``query``, at most :data:`SEARCH_LIMIT` of them."""
    if not recipes:
        return f"No recipe matches “{query}”. Try a shorter word or an ingredient."
    shown = recipes[:SEARCH_LIMIT]
    lines = [f"Recipes matching “{query}”:"]
    lines.extend(
        f"• #{recipe.id} **{recipe.title}** ({recipe.cuisine}, {recipe.minutes} min)"
        for recipe in shown
    )
    if len(recipes) > len(shown):
        lines.append(f"…and {len(recipes) - len(shown)} more; narrow the search.")
    lines.append("Save one with `/favorite add` or `!save <number>`.")
    return clamp("\n".join(lines))


def error(text: str) -> str:
    """An error reply: the mark, then what went wrong and what to do."""
    return clamp(ERROR_MARK + text)


def is_error(text: str) -> bool:
    """Whether a reply the bot sent is an error reply."""
    return text.startswith(ERROR_MARK)


def clamp(text: str) -> str:
    """Shorten ``text`` to fit one Discord message."""
    if len(text) <= MESSAGE_LIMIT:
        return text
    return text[: MESSAGE_LIMIT - 1] + "…"


def _title(item: Favorite) -> str:
    return item.title if item.title is not None else "a recipe no longer in the catalog"
