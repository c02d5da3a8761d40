"""``recipe-pipeline bench``: throughput, latency and memory against the pipeline's
own limits, each measured in the same run.

It starts the embedded broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``), runs the phases
of :mod:`recipe_pipeline.bench.runner`, prints a table (figure, value, baseline,
ratio, goal, met) on stdout, and with ``--json PATH`` writes the same as JSON.
Progress goes to stderr. Everything it starts is stopped at the end, also on Ctrl-C
or SIGTERM. ``--quick`` runs a short version in under a minute. How each figure is
measured is written in ``docs/benchmarks.md``.

Exit codes: 0 when the run finished (whether or not every goal was met); 1 when it
could not run; 130 on Ctrl-C and 143 on SIGTERM, after stopping what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pipeline_core.commands import CommandFailed

T = TypeVar("T")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (under a minute) instead of the full one (about 5 minutes)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures as JSON here"
    )
    parser.add_argument(
        "--seconds",
        type=_positive_float,
        metavar="S",
        help="set every timed phase to S seconds (for trying the benchmark out)",
    )
    parser.add_argument(
        "--store-events",
        type=_positive_int,
        metavar="N",
        help="events in the store phase's backlog (quick 20,000; full 150,000)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep databases, logs and broker data here (default: a temporary folder,"
        " deleted afterwards)",
    )
    parser.add_argument(
        "--no-dashboard", action="store_true", help="skip the dashboard figures"
    )
    parser.add_argument(
        "--only",
        choices=["dashboard"],
        help="run one phase alone: 'dashboard' measures only the dashboard figures"
        " (no backend runs; its health shows as down)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the INFO logs of the clients and processes it starts",
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 3600")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 100 <= value <= 10_000_000:
        raise argparse.ArgumentTypeError(f"{value} is not between 100 and 10,000,000")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write the JSON; see the module doc."""
    import asyncio

    from pipeline_core.settings import load_settings
    from recipe_pipeline.bench.report import render_table, report_json
    from recipe_pipeline.bench.runner import (
        BenchError,
        Progress,
        preset,
        run_benchmark,
        scaled,
    )

    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    settings = load_settings()
    if args.only and args.no_dashboard:
        raise CommandFailed("--only dashboard and --no-dashboard exclude each other")
    if args.json is not None and args.json.is_dir():
        raise CommandFailed(f"--json {args.json} is a folder; give a file path")

    with _work_dir(args.work_dir) as work_dir:
        config = preset("quick" if args.quick else "full", work_dir)
        config = scaled(config, args.seconds, args.store_events)
        progress = Progress()
        progress(f"{config.mode} run; work files in {work_dir}")
        try:
            figures, machine = asyncio.run(
                _cancellable(
                    run_benchmark(
                        config,
                        bootstrap=settings.kafka_bootstrap_servers,
                        progress=progress,
                        measure_dashboard=not args.no_dashboard,
                        only=args.only,
                    )
                )
            )
        except BenchError as exc:
            raise CommandFailed(f"{exc} (everything it started was stopped)") from None
        except _Terminated:
            progress("stopped by SIGTERM; everything it started was stopped")
            return 143
        except KeyboardInterrupt:
            progress("interrupted; everything it started was stopped")
            return 130

    sys.stdout.write(render_table(figures))
    sys.stdout.flush()
    if args.json is not None:
        document = report_json(figures, mode=config.mode, machine=machine)
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(document, indent=2) + "\n")
        except OSError as exc:
            raise CommandFailed(
                f"could not write {args.json} ({exc.strerror or exc}); the table"
                " above has the same figures"
            ) from None
    return 0


class _Terminated(Exception):
    """SIGTERM asked the run to stop."""


async def _cancellable(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine``; SIGTERM cancels it (so its clean-up runs), as Ctrl-C does."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coroutine)
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        return await task
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


@contextlib.contextmanager
def _work_dir(given: Path | None) -> Iterator[Path]:
    """The given work folder, or a temporary one deleted afterwards."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="recipe-bench-") as temp:
        yield Path(temp)
