"""``recipe-pipeline broker``: the embedded Kafka broker alone, until Ctrl-C.

Prints the bootstrap address on stdout once the broker answers and, with
``--ready-file PATH``, writes ``{"kafka_bootstrap": "127.0.0.1:PORT", "pid": ...,
"data_dir": ...}`` there. SIGINT or SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from pipeline_core.broker.embedded import DEFAULT_HEAP_MB, BrokerError, EmbeddedBroker
from pipeline_core.broker.jars import KafkaJarsError, ensure_kafka_jars, load_lock
from pipeline_core.commands import CommandFailed, write_ready_file


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``broker`` arguments."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the broker's data here (default: a temporary dir, deleted on exit)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="client port on 127.0.0.1 (default: free)"
    )
    parser.add_argument(
        "--heap-mb", type=int, default=DEFAULT_HEAP_MB, help="JVM heap in MiB"
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write a JSON object here once it answers"
    )
    parser.add_argument(
        "--fetch-only",
        action="store_true",
        help="only fetch and verify the Kafka jars into the cache, then exit",
    )


def run(args: argparse.Namespace) -> int:
    """Run the broker until SIGINT or SIGTERM."""
    if not 0 <= args.port < 65536:
        raise CommandFailed(f"--port {args.port} is not a TCP port (0 to 65535)")
    if args.heap_mb < 128:
        raise CommandFailed(f"--heap-mb {args.heap_mb} is too small; give 128 or more")
    if args.fetch_only:
        return _fetch_jars()
    return asyncio.run(_serve(args))


def _fetch_jars() -> int:
    lock = load_lock()
    total_mb = lock.total_bytes / 1e6
    print(  # noqa: T201
        f"Apache Kafka {lock.kafka_version}: {len(lock.jars)} jars, {total_mb:.0f} MB",
        file=sys.stderr,
    )

    def show(done: int, total: int, name: str) -> None:
        print(f"  [{done:>2}/{total}] {name}", file=sys.stderr, flush=True)  # noqa: T201

    try:
        paths = ensure_kafka_jars(lock, progress=show)
    except KafkaJarsError as exc:
        raise CommandFailed(str(exc)) from None
    print(paths[0].parent)  # noqa: T201
    return 0


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def show_progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)  # noqa: T201

    broker = EmbeddedBroker(
        args.data_dir, port=args.port, heap_mb=args.heap_mb, progress=show_progress
    )
    try:
        await broker.start()
        print(broker.bootstrap_servers, flush=True)  # noqa: T201
        if args.ready_file:
            write_ready_file(
                args.ready_file,
                {
                    "kafka_bootstrap": broker.bootstrap_servers,
                    "pid": broker.pid,
                    "data_dir": str(broker.data_dir),
                },
            )
        await _until_stopped(broker, stop)
    except (BrokerError, KafkaJarsError) as exc:
        raise CommandFailed(str(exc)) from None
    finally:
        await broker.close()
    return 0


async def _until_stopped(broker: EmbeddedBroker, stop: asyncio.Event) -> None:
    """Wait for a stop signal; fail if the broker dies on its own meanwhile."""
    while not stop.is_set():
        if not broker.running:
            raise BrokerError(
                f"the Kafka broker exited unexpectedly; see {broker.log_file}"
            )
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            continue
