"""Argument conversion for prefix and slash commands.

A recipe is named by its catalog number, optionally written ``#12``. Anything else
is a bad argument with a reply that says how to find the number.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.backend_client import BackendError

if TYPE_CHECKING:
    from bot.app import RecipeBot

logger = logging.getLogger(__name__)

_RECIPE_ID_RE = re.compile(r"^#?([0-9]{1,9})$")
#: Discord shows at most 25 autocomplete choices.
MAX_CHOICES = 25


class BadRecipeArgument(app_commands.AppCommandError):
    """A slash command's recipe option is not a recipe number."""


def parse_recipe_id(text: str) -> str | None:
    """The recipe number in ``text`` (``"12"`` or ``"#12"``), or ``None``."""
    match = _RECIPE_ID_RE.match(text.strip())
    if match is None:
        return None
    return str(int(match.group(1)))


def bad_recipe_message(text: str) -> str:
    """What to tell a user whose recipe argument is not a recipe number."""
    shown = text if len(text) <= 40 else text[:39] + "…"
    return (
        f"“{shown}” is not a recipe number. Use the number shown by search, for"
        " example `!save 12` or `/favorite add recipe:12`; find one with"
        " `!recipes pasta` or `/recipe search`."
    )


class RecipeIdConverter(commands.Converter[str]):
    """Prefix commands: ``12`` or ``#12`` becomes ``"12"``."""

    async def convert(  # type: ignore[override]
        self, ctx: commands.Context[RecipeBot], argument: str
    ) -> str:
        recipe_id = parse_recipe_id(argument)
        if recipe_id is None:
            raise commands.BadArgument(bad_recipe_message(argument))
        return recipe_id


class RecipeIdTransformer(app_commands.Transformer):
    """Slash commands: a text option holding a recipe number, with autocomplete.

    Autocomplete offers catalog recipes whose title or ingredients match what the
    user typed so far; the choice values are recipe numbers.
    """

    async def transform(  # type: ignore[override]
        self, interaction: discord.Interaction[RecipeBot], value: str
    ) -> str:
        recipe_id = parse_recipe_id(str(value))
        if recipe_id is None:
            raise BadRecipeArgument(bad_recipe_message(str(value)))
        return recipe_id

    async def autocomplete(  # type: ignore[override]
        self, interaction: discord.Interaction[RecipeBot], value: str
    ) -> list[app_commands.Choice[str]]:
        from bot.actions import trace_id_for

        query = str(value).strip().lstrip("#")
        try:
            recipes = await interaction.client.backend.search_recipes(
                query, trace_id=trace_id_for(interaction.id)
            )
        except BackendError as exc:
            logger.info("autocomplete without suggestions: %s", exc)
            return []
        return [
            app_commands.Choice(name=f"#{r.id} {r.title}"[:100], value=r.id)
            for r in recipes[:MAX_CHOICES]
        ]
