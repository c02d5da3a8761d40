"""``recipe-pipeline bot``: run the bot on Discord, or on the local gateway.

With ``DISCORD_TOKEN`` the bot logs in to Discord (bounded by ``--login-timeout``)
and connects; a rejected or unreachable token ends with one line and exit 1. Without
a token the same bot runs on the local gateway (``pipeline_core.gateway``), where
``recipe-pipeline discord`` and the dashboard drive it in-process. SIGTERM or SIGINT
stops it cleanly within ``--stop-timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from pipeline_core.commands import CommandFailed, write_ready_file
from pipeline_core.settings import load_settings

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``bot`` subcommand's arguments."""
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write {mode, bot_user, pid} as JSON here once the bot answers",
    )
    parser.add_argument(
        "--login-timeout",
        type=float,
        default=30.0,
        help="seconds allowed for logging in to Discord and getting READY (default 30)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=10.0,
        help="seconds allowed for a clean stop (default 10)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the bot until SIGTERM or SIGINT."""
    settings = load_settings()
    token = (
        settings.discord_token.get_secret_value() if settings.discord_token else None
    )
    return asyncio.run(_serve(settings, token, args))


async def _serve(settings: Any, token: str | None, args: argparse.Namespace) -> int:
    from bot.app import build_bot

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    bot = build_bot(settings)
    if token is None:
        await _run_local(bot, args, stop)
    else:
        await _run_discord(bot, token, args, stop)
    logger.info("bot stopped")
    return 0


async def _run_local(bot: Any, args: argparse.Namespace, stop: asyncio.Event) -> None:
    from pipeline_core.gateway import LocalGateway

    async with LocalGateway(bot) as gateway:
        logger.info(
            "bot %s runs on the local gateway (no DISCORD_TOKEN); drive it with"
            " 'recipe-pipeline discord'",
            bot.user,
        )
        _ready(args, "local", str(bot.user), len(gateway.commands))
        await stop.wait()


async def _run_discord(
    bot: Any, token: str, args: argparse.Namespace, stop: asyncio.Event
) -> None:
    import aiohttp
    import discord

    try:
        try:
            await asyncio.wait_for(bot.login(token), timeout=args.login_timeout)
        except discord.LoginFailure:
            raise CommandFailed(
                "Discord rejected DISCORD_TOKEN; copy the bot token again from the"
                " developer portal"
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise CommandFailed(
                f"could not log in to Discord within {args.login_timeout:g} s"
                f" ({type(exc).__name__}); check the network, or unset DISCORD_TOKEN"
                " to use the local gateway"
            ) from None

        connection = asyncio.create_task(
            bot.connect(reconnect=True), name="bot-connect"
        )
        ready = asyncio.create_task(bot.wait_until_ready(), name="bot-ready")
        done, _ = await asyncio.wait(
            {connection, ready},
            timeout=args.login_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if ready not in done:
            ready.cancel()
            raise CommandFailed(
                "Discord's gateway did not become ready within"
                f" {args.login_timeout:g} s; check the network and the bot's"
                " intents in the developer portal"
            )
        _ready(args, "discord", str(bot.user), None)
        stopping = asyncio.create_task(stop.wait(), name="bot-stop")
        await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if connection.done() and connection.exception() is not None:
            raise CommandFailed(
                f"the Discord connection ended: {type(connection.exception()).__name__}"
            )
    finally:
        await asyncio.wait_for(bot.close(), timeout=args.stop_timeout)


def _ready(
    args: argparse.Namespace, mode: str, bot_user: str, commands: int | None
) -> None:
    if args.ready_file is None:
        return
    payload: dict[str, Any] = {"mode": mode, "bot_user": bot_user, "pid": os.getpid()}
    if commands is not None:
        payload["slash_commands"] = commands
    write_ready_file(args.ready_file, payload)
