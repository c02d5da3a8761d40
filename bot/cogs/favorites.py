"""Favourites: ``/favorite add|remove|list`` and ``!save``, ``!unsave``, ``!favorites``.

Each slash command defers (privately) before calling the backend and answers with
exactly one follow-up; failures go to the tree's error handler, which sends that one
follow-up instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import actions
from bot.converters import RecipeIdConverter, RecipeIdTransformer
from pipeline_core.events import Source

if TYPE_CHECKING:
    from bot.app import RecipeBot

RecipeOption = app_commands.Transform[str, RecipeIdTransformer]

#: Writes allowed per user per window, so one user cannot flood the pipeline.
WRITE_RATE, WRITE_WINDOW = 10, 10.0


def invoker_of_interaction(
    interaction: discord.Interaction[RecipeBot],
) -> actions.Invoker:
    """Who sent a slash command."""
    guild_id = interaction.guild_id
    return actions.Invoker(
        user_id=str(interaction.user.id),
        user_name=interaction.user.display_name,
        guild_id=str(guild_id) if guild_id is not None else None,
        trace_id=actions.trace_id_for(interaction.id),
        source=Source.DISCORD_SLASH,
    )


def invoker_of_context(ctx: commands.Context[RecipeBot]) -> actions.Invoker:
    """Who sent a prefix command."""
    return actions.Invoker(
        user_id=str(ctx.author.id),
        user_name=ctx.author.display_name,
        guild_id=str(ctx.guild.id) if ctx.guild is not None else None,
        trace_id=actions.trace_id_for(ctx.message.id),
        source=Source.DISCORD_PREFIX,
    )


def _user_key(interaction: discord.Interaction[RecipeBot]) -> int:
    return interaction.user.id


class Favorites(commands.GroupCog, group_name="favorite"):
    """Save recipes you like and list them."""

    def __init__(self, bot: RecipeBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="add")
    @app_commands.describe(recipe="the recipe's number (start typing to search)")
    @app_commands.checks.cooldown(WRITE_RATE, WRITE_WINDOW, key=_user_key)
    async def add(
        self, interaction: discord.Interaction[RecipeBot], recipe: RecipeOption
    ) -> None:
        """Save a recipe to your favourites."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        who = invoker_of_interaction(interaction)
        reply = await actions.save(self.bot.backend, who, recipe)
        await interaction.followup.send(reply, ephemeral=True)

    @app_commands.command(name="remove")
    @app_commands.describe(recipe="the recipe's number")
    @app_commands.checks.cooldown(WRITE_RATE, WRITE_WINDOW, key=_user_key)
    async def remove(
        self, interaction: discord.Interaction[RecipeBot], recipe: RecipeOption
    ) -> None:
        """Remove a recipe from your favourites."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        who = invoker_of_interaction(interaction)
        reply = await actions.unsave(self.bot.backend, who, recipe)
        await interaction.followup.send(reply, ephemeral=True)

    @app_commands.command(name="list")
    async def list_(self, interaction: discord.Interaction[RecipeBot]) -> None:
        """Show your favourite recipes, newest first."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await actions.list_mine(
            self.bot.backend, invoker_of_interaction(interaction)
        )
        await interaction.followup.send(reply, ephemeral=True)

    @commands.command(name="save", usage="<recipe number>")
    @commands.cooldown(WRITE_RATE, WRITE_WINDOW, commands.BucketType.user)
    async def save(
        self,
        ctx: commands.Context[RecipeBot],
        recipe: str = commands.parameter(converter=RecipeIdConverter),
    ) -> None:
        """Save a recipe to your favourites, e.g. !save 12."""
        async with ctx.typing():
            reply = await actions.save(
                self.bot.backend, invoker_of_context(ctx), recipe
            )
        await ctx.reply(reply, mention_author=False)

    @commands.command(name="unsave", usage="<recipe number>")
    @commands.cooldown(WRITE_RATE, WRITE_WINDOW, commands.BucketType.user)
    async def unsave(
        self,
        ctx: commands.Context[RecipeBot],
        recipe: str = commands.parameter(converter=RecipeIdConverter),
    ) -> None:
        """Remove a recipe from your favourites, e.g. !unsave 12."""
        async with ctx.typing():
            reply = await actions.unsave(
                self.bot.backend, invoker_of_context(ctx), recipe
            )
        await ctx.reply(reply, mention_author=False)

    @commands.command(name="favorites", aliases=["favourites"])
    async def favorites(self, ctx: commands.Context[RecipeBot]) -> None:
        """Show your favourite recipes, newest first."""
        async with ctx.typing():
            reply = await actions.list_mine(self.bot.backend, invoker_of_context(ctx))
        await ctx.reply(reply, mention_author=False)


async def setup(bot: RecipeBot) -> None:
    """Extension entry point: add the cog."""
    await bot.add_cog(Favorites(bot))
