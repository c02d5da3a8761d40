"""``recipe-pipeline up``: the whole stack headless, its logs in the foreground.

Starts the stack (:class:`~pipeline_core.stack.Stack`) from the configuration and,
once everything answers, writes the ready file: ``kafka_bootstrap``,
``backend_url``, ``database_url``, and ``api_token_file`` (the absolute path of a
file only this user can read that holds the API token; the token itself is never
written to the ready file or the log). Then it copies this run's log lines of the
children to stderr, each prefixed with the component's name, until SIGINT or
SIGTERM, stops everything in reverse order and exits 0. A child or the embedded
broker that dies on its own stops the rest of the stack, with exit 1 and one line
naming the log to read. A data dir or SQLite database that another running stack
holds is refused at once (exit 1), before anything in it is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from pipeline_core.commands import CommandFailed, write_ready_file
from pipeline_core.settings import load_settings
from pipeline_core.stack.process import ComponentState
from pipeline_core.stack.stack import Stack, StackConfig, StackError

logger = logging.getLogger(__name__)

#: How often the children's logs and states are looked at.
WATCH_INTERVAL_S = 0.2


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``up``."""
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write the stack's addresses here as JSON once everything answers",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/stack"),
        help="broker data, children's logs and ready files (default data/stack)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the stack until SIGINT or SIGTERM."""
    config = StackConfig.from_settings(load_settings(), args.data_dir)
    return asyncio.run(_serve(config, args.ready_file))


async def _serve(config: StackConfig, ready_file: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    stack = Stack(config)
    starting = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            logger.info("stop requested during start-up; stopping")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, StackError):
                await starting
            return 0
        try:
            starting.result()
        except StackError as exc:
            raise CommandFailed(str(exc)) from None

        if ready_file is not None:
            token_file = str(stack.api_token_file.absolute())
            payload = {**stack.addresses(), "api_token_file": token_file}
            write_ready_file(ready_file, payload)
        logger.info("stack ready: %s", stack.addresses())
        return await _watch(stack, stop)
    finally:
        stopping.cancel()
        await stack.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _watch(stack: Stack, stop: asyncio.Event) -> int:
    while not stop.is_set():
        broker = stack.broker
        if broker is not None and not broker.running:
            raise CommandFailed(
                f"the embedded Kafka broker exited; see {broker.log_file}"
            )
        for name, component in stack.components.items():
            for line in component.poll_log():
                sys.stderr.write(f"[{name}] {line}\n")
            if component.check() is ComponentState.FAILED:
                raise CommandFailed(
                    f"the {name} exited with code {component.exit_code}; see"
                    f" {component.log_path}"
                )
        sys.stderr.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
    logger.info("stop requested; stopping the stack")
    return 0
