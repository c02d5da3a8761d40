"""``recipe-pipeline discord "TEXT"``: one command through the local gateway.

The real bot is built in this process, logged in to the local gateway, and sent
``TEXT`` as the given user: a slash command when it starts with ``/``, otherwise a
channel message for the prefix commands. The bot's replies go to stdout, one per
paragraph. Exit status: 0 when the command succeeded, 1 when the bot answered with
an error (backend unreachable, unknown recipe, bad argument...) or Discord's client
would have refused the input, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pipeline_core.commands import CommandFailed
from pipeline_core.settings import load_settings


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``discord`` subcommand's arguments."""
    parser.add_argument("text", help='the command, e.g. "/favorite add recipe:12"')
    parser.add_argument("--user-id", required=True, help="the sender's Discord id")
    parser.add_argument("--user-name", required=True, help="the sender's display name")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the bot's reply (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    """Send the command, print the replies, return the exit status."""
    settings = load_settings()
    return asyncio.run(_send(settings, args))


async def _send(settings: object, args: argparse.Namespace) -> int:
    from bot import replies
    from bot.app import build_bot
    from pipeline_core.gateway import LocalGateway, LocalGatewayError
    from pipeline_core.settings import Settings

    assert isinstance(settings, Settings)
    bot = build_bot(settings)
    async with LocalGateway(bot) as gateway:
        try:
            exchange = await gateway.send(
                args.text,
                user_id=args.user_id,
                user_name=args.user_name,
                timeout=args.timeout,
            )
        except LocalGatewayError as exc:
            raise CommandFailed(str(exc)) from None

    for reply in exchange.replies:
        sys.stdout.write(reply + "\n\n")
    sys.stdout.flush()

    if exchange.error is not None:
        raise CommandFailed(exchange.error)
    if not exchange.replies:
        raise CommandFailed(
            f"the bot did not answer {args.text!r}; prefix commands start with"
            f" '{bot.command_prefix}', type '!help' for the list"
        )
    if any(replies.is_error(reply) for reply in exchange.replies):
        sys.stderr.write("recipe-pipeline discord: the bot answered with an error\n")
        return 1
    return 0
