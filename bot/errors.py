"""Failures turned into replies a person understands; never a traceback.

:func:`reply_for` maps every failure a command can meet to the text of an error
reply. Unexpected failures are logged with their traceback and answered with a
generic apology, so no internals (or secrets) reach Discord.
"""

from __future__ import annotations

import logging

from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.backend_client import BackendError
from bot.converters import BadRecipeArgument

logger = logging.getLogger(__name__)


def reply_for(error: BaseException, *, usage: str | None = None) -> str:
    """The error reply for ``error``, raised by a prefix or slash command.

    Args:
        error: what the command raised (wrapping errors are unwrapped).
        usage: how the command is written, for missing-argument replies.
    """
    error = _unwrap(error)
    if isinstance(error, BackendError):
        return replies.error(str(error))
    if isinstance(error, BadRecipeArgument | commands.BadArgument):
        return replies.error(str(error))
    if isinstance(error, commands.MissingRequiredArgument):
        example = f" Usage: `{usage}`." if usage else ""
        return replies.error(f"Something is missing: `{error.param.name}`.{example}")
    if isinstance(error, commands.TooManyArguments):
        example = f" Usage: `{usage}`." if usage else ""
        return replies.error(f"That is more than the command takes.{example}")
    if isinstance(error, commands.CommandNotFound):
        return replies.error("I don't know that command. Type `!help` for the list.")
    if isinstance(error, commands.CommandOnCooldown | app_commands.CommandOnCooldown):
        return replies.error(
            f"Slow down a little: try again in {error.retry_after:.0f} s."
        )
    if isinstance(error, commands.CheckFailure | app_commands.CheckFailure):
        return replies.error("You can't use this command here.")
    if isinstance(error, commands.UserInputError):
        return replies.error(f"I couldn't read that: {error}")
    logger.error("command failed unexpectedly", exc_info=error)
    return replies.error("Something went wrong on my side. Please try again later.")


def _unwrap(error: BaseException) -> BaseException:
    while isinstance(
        error,
        commands.CommandInvokeError
        | commands.HybridCommandError
        | app_commands.CommandInvokeError,
    ):
        error = error.original
    return error
