"""``recipe-pipeline consumer``: run the storing consumer until SIGTERM or Ctrl-C.

Ready file keys (``--ready-file``): ``metrics_url``, ``group``, ``topic``, written
once the member has joined its group and the metrics answer. On SIGTERM or SIGINT
the batch in flight is finished and committed, the member leaves its group and the
command exits 0; the whole stop is bounded by ``--stop-timeout``.

If the broker is gone or does not answer while stopping, the stop still ends
within ``--stop-timeout``: both Kafka clients are closed, one warning says the
broker was unreachable and which offsets (if any) were not committed, and the
command exits 0, since it stopped as asked and lost nothing: offsets are committed
only after their transaction, so the records past the last committed offset are
already stored and come back on restart as counted duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from pipeline_core.commands import CommandFailed

logger = logging.getLogger(__name__)

#: The service bounds its own stop by --stop-timeout; this much more is allowed
#: before the command gives up on it and cancels it (a last resort).
LAST_RESORT_MARGIN_S = 5.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``consumer`` options."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="port of /metrics on 127.0.0.1 (default 0: a free port, see the log)",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write a JSON object here once the consumer has joined its group",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=10_000,
        help="records per batch and database transaction (1 to 50000, default 10000)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="seconds allowed to finish the batch and leave the group (default 30)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the consumer; 0 on a clean stop."""
    if not 0 <= args.metrics_port < 65536:
        raise CommandFailed("--metrics-port must be 0 to 65535")
    if not 1 <= args.max_batch <= 50_000:
        raise CommandFailed("--max-batch must be 1 to 50000")
    if not 0 < args.stop_timeout <= 300:
        raise CommandFailed("--stop-timeout must be above 0 and at most 300 seconds")
    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from consumer.metrics import ConsumerMetrics
    from consumer.service import ConsumerError, ConsumerOptions, StoringConsumer
    from consumer.store import DatabaseUnavailable, FavoriteStore
    from pipeline_core.commands import write_ready_file
    from pipeline_core.settings import load_settings
    from pipeline_core.stack.topics import TopicSetupError, ensure_topics
    from pipeline_core.storage import create_schema, make_engine

    settings = load_settings()
    bootstrap = settings.bootstrap_or_default
    options = ConsumerOptions(
        bootstrap=bootstrap,
        topic=settings.favorites_topic,
        group=settings.consumer_group,
        max_records=args.max_batch,
    )

    try:
        engine = make_engine(settings.database_url)
        await asyncio.to_thread(create_schema, engine)
    except (SQLAlchemyError, OSError) as exc:
        raise CommandFailed(
            f"could not open the database ({type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or 'see the log'}); check DATABASE_URL "
            "and that its folder can be created and written"
        ) from None

    try:
        await ensure_topics(
            bootstrap,
            [options.topic, options.dead_letter_topic],
            partitions=settings.favorites_topic_partitions,
            timeout=30.0,
        )
    except TopicSetupError as exc:
        raise CommandFailed(str(exc)) from None

    metrics = ConsumerMetrics()
    port = metrics.serve(args.metrics_port)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    logger.info("consumer metrics at %s", metrics_url)

    def on_ready() -> None:
        if args.ready_file is not None:
            write_ready_file(
                args.ready_file,
                {
                    "metrics_url": metrics_url,
                    "group": options.group,
                    "topic": options.topic,
                },
            )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    service = StoringConsumer(options, FavoriteStore(engine), metrics)
    task = asyncio.create_task(
        service.run(stop, on_ready, stop_timeout=args.stop_timeout)
    )
    try:
        await _until_stopped(task, stop, args.stop_timeout + LAST_RESORT_MARGIN_S)
    except (ConsumerError, DatabaseUnavailable) as exc:
        raise CommandFailed(str(exc)) from None
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        metrics.close()
        engine.dispose()
    logger.info("consumer stopped cleanly")
    return 0


async def _until_stopped(
    task: asyncio.Task[None], stop: asyncio.Event, grace: float
) -> None:
    stop_wait = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
    if not task.done():
        logger.info("stop requested; finishing the batch in flight")
        done, _pending = await asyncio.wait({task}, timeout=grace)
        if not done:
            logger.warning("the consumer did not stop within %.0f s; abandoning", grace)
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            return
    if task.cancelled():
        return
    task.result()
