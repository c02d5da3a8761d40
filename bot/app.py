"""The recipe bot: a ``commands.Bot`` handed its settings and backend client.

:func:`build_bot` makes the bot without connecting anything; the backend client is
opened in ``setup_hook`` (when the bot logs in, to Discord or to the local gateway)
and closed with the bot. The same cogs, converters, checks and error handlers run in
both modes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot import errors
from bot.backend_client import BackendClient
from pipeline_core.settings import Settings

logger = logging.getLogger(__name__)

#: The prefix of the bot's message commands.
PREFIX = "!"
#: Extensions loaded in ``setup_hook``.
EXTENSIONS = ("bot.cogs.favorites", "bot.cogs.recipes")

BackendFactory = Callable[[], BackendClient]


class RecipeTree(app_commands.CommandTree["RecipeBot"]):
    """The slash-command tree; its error handler answers every failure once."""

    async def on_error(
        self,
        interaction: discord.Interaction[RecipeBot],
        error: app_commands.AppCommandError,
    ) -> None:
        if interaction.type is discord.InteractionType.autocomplete:
            logger.warning("autocomplete failed: %s", type(error).__name__)
            if not interaction.response.is_done():
                await interaction.response.autocomplete([])
            return

        command = interaction.command
        usage = f"/{command.qualified_name}" if command is not None else None
        reply = errors.reply_for(error, usage=usage)
        if interaction.response.is_done():
            await interaction.followup.send(reply, ephemeral=True)
        else:
            await interaction.response.send_message(reply, ephemeral=True)


class RecipeBot(commands.Bot):
    """The recipe bot.

    Args:
        settings: the pipeline settings (``BACKEND_URL``, ``API_TOKEN``).
        backend_factory: makes the backend client in ``setup_hook``; by default one
            for ``settings.backend_url`` with the ``API_TOKEN`` bearer token.
    """

    def __init__(
        self, settings: Settings, *, backend_factory: BackendFactory | None = None
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix=PREFIX,
            intents=intents,
            help_command=None,
            tree_cls=RecipeTree,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self._backend_factory = backend_factory or (lambda: backend_for(settings))
        self._backend: BackendClient | None = None

    @property
    def backend(self) -> BackendClient:
        """The backend client; it exists from ``setup_hook`` until ``close``."""
        if self._backend is None:
            raise RuntimeError(
                "the bot has no backend client: it is opened in setup_hook, so log"
                " the bot in (Discord or LocalGateway) first"
            )
        return self._backend

    async def setup_hook(self) -> None:
        self._backend = self._backend_factory()
        logger.info("bot backend is %s", self._backend.base_url)
        for extension in EXTENSIONS:
            await self.load_extension(extension)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._backend is not None:
                await self._backend.aclose()
                self._backend = None

    async def on_command_error(  # type: ignore[override]
        self, ctx: commands.Context[RecipeBot], error: commands.CommandError
    ) -> None:
        """Answer a failed prefix command with one error reply."""
        usage = None
        if ctx.command is not None:
            usage = f"{PREFIX}{ctx.command.qualified_name} {ctx.command.signature}"
        await ctx.reply(errors.reply_for(error, usage=usage.strip() if usage else None))


def backend_for(settings: Settings) -> BackendClient:
    """The backend client the settings describe."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return BackendClient(settings.backend_url, token)


def build_bot(
    settings: Settings, *, backend_factory: BackendFactory | None = None
) -> RecipeBot:
    """Make the bot; nothing connects until it logs in."""
    return RecipeBot(settings, backend_factory=backend_factory)
