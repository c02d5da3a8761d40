"""The catalog and help: ``/recipe search``, ``!recipes`` and ``!help``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import actions
from bot.cogs.favorites import invoker_of_context, invoker_of_interaction

if TYPE_CHECKING:
    from bot.app import RecipeBot


def help_text(bot: RecipeBot) -> str:
    """The help reply: every prefix and slash command with its user text."""
    lines = ["**Recipe bot**: save recipes you like.", "", "Prefix commands:"]
    for command in sorted(bot.commands, key=lambda c: c.name):
        usage = f" {command.usage}" if command.usage else ""
        lines.append(
            f"• `{bot.command_prefix}{command.name}{usage}`: {command.short_doc}"
        )
    lines.extend(["", "Slash commands:"])
    for slash in bot.tree.walk_commands():
        if isinstance(slash, app_commands.Command):
            lines.append(f"• `/{slash.qualified_name}`: {slash.description}")
    return "\n".join(lines)


class Recipes(commands.GroupCog, group_name="recipe"):
    """Find recipes in the catalog."""

    def __init__(self, bot: RecipeBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="search")
    @app_commands.describe(
        query="a word from the title, cuisine, a tag or an ingredient"
    )
    async def search(
        self,
        interaction: discord.Interaction[RecipeBot],
        query: app_commands.Range[str, 1, 100],
    ) -> None:
        """Find recipes by title, cuisine, tag or ingredient."""
        await interaction.response.defer(thinking=True)
        who = invoker_of_interaction(interaction)
        reply = await actions.search(self.bot.backend, who, query)
        await interaction.followup.send(reply)

    @commands.command(name="recipes", usage="<words>")
    async def recipes(self, ctx: commands.Context[RecipeBot], *, query: str) -> None:
        """Find recipes by title, cuisine, tag or ingredient, e.g. !recipes pasta."""
        async with ctx.typing():
            reply = await actions.search(
                self.bot.backend, invoker_of_context(ctx), query[:100]
            )
        await ctx.reply(reply, mention_author=False)

    @commands.command(name="help")
    async def help(self, ctx: commands.Context[RecipeBot]) -> None:
        """Show what the bot can do."""
        await ctx.reply(help_text(self.bot), mention_author=False)


async def setup(bot: RecipeBot) -> None:
    """Extension entry point: add the cog."""
    await bot.add_cog(Recipes(bot))
