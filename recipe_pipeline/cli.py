"""``recipe-pipeline``: one console script, one subcommand per job.

Each subcommand lives in the module that owns the job and exposes two functions:
``configure(parser)`` adds its arguments and ``run(args) -> int`` does the work and
returns the exit code. Modules are imported only when their subcommand runs, so
``recipe-pipeline lag`` never pays for Textual or discord.py.

Exit codes: 0 on a clean stop; 1 with a one-line reason on stderr on failure; 2 for
bad command-line arguments or configuration (argparse's own convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, cast

from pipeline_core.commands import CommandFailed
from pipeline_core.settings import SettingsError

#: subcommand -> (module that owns it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "dashboard": (
        "tui.command",
        "start the embedded stack (or attach) and open the dashboard",
    ),
    "up": ("pipeline_core.stack.command", "run the whole stack headless until Ctrl-C"),
    "broker": ("pipeline_core.broker.command", "run the embedded Kafka broker alone"),
    "backend": ("backend.command", "run the HTTP API (uvicorn)"),
    "consumer": ("consumer.command", "run the storing consumer"),
    "bot": ("bot.command", "run the Discord bot (local gateway without DISCORD_TOKEN)"),
    "discord": (
        "bot.local_command",
        "send one Discord command to the bot, print the reply",
    ),
    "lag": ("pipeline_core.lag_command", "consumer lag per partition, with status"),
    "bench": ("recipe_pipeline.bench", "run the pipeline benchmark"),
}


#: Subcommands whose ``--ready-file`` is an output (``dashboard`` reads one instead).
READY_FILE_WRITERS = frozenset({"broker", "up", "backend", "consumer", "bot"})


class CommandModule(Protocol):
    """What a subcommand's module provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    module_name = COMMANDS[name][0]
    return cast(CommandModule, importlib.import_module(module_name))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser; only ``command``'s module is imported, if given."""
    parser = argparse.ArgumentParser(
        prog="recipe-pipeline",
        description="Discord -> FastAPI -> Kafka -> SQLite, observable and testable.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for the command's own logs (default INFO)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _load(name).configure(sub)
    return parser


def _requested_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``recipe-pipeline`` with ``argv`` (default ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)

    if args.command != "dashboard":
        logging.basicConfig(
            level=args.log_level,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    ready_file: Path | None = getattr(args, "ready_file", None)
    if args.command not in READY_FILE_WRITERS:
        ready_file = None
    try:
        if ready_file is not None:
            # A ready file left by an earlier run must not pass for this one.
            ready_file.unlink(missing_ok=True)
        return _load(args.command).run(args)
    except SettingsError as exc:
        print(f"recipe-pipeline {args.command}: configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except CommandFailed as exc:
        print(f"recipe-pipeline {args.command}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or str(exc)
        print(f"recipe-pipeline {args.command}: {reason}{where}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if ready_file is not None:
            # Once the command has ended, what the file announced no longer answers.
            ready_file.unlink(missing_ok=True)
