"""``recipe-pipeline lag``: a consumer group's lag per partition, with its status.

Reads the lag a few times, ``--interval`` apart, so the Burrow-style status has a
window to judge (one read alone is always OK unless the lag is 0). With ``--json``
it prints one JSON object: the last snapshot's fields plus ``status`` and, per
partition, ``status`` and ``reason``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pipeline_core.commands import CommandFailed
from pipeline_core.lag import (
    LagError,
    LagEvaluation,
    LagEvaluator,
    LagReader,
    LagSnapshot,
)
from pipeline_core.settings import load_settings

#: Upper bounds that keep one ``lag`` run short whatever the options say.
MAX_SAMPLES = 60
MAX_INTERVAL_S = 10.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``lag`` options."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--group", help="consumer group (default CONSUMER_GROUP)")
    parser.add_argument("--topic", help="topic (default FAVORITES_TOPIC)")
    parser.add_argument(
        "--samples",
        type=int,
        default=1,
        help=f"reads to judge the status over (1 to {MAX_SAMPLES}, default 1)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help=f"seconds between reads (up to {MAX_INTERVAL_S:g}, default 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the broker on each read (default 10)",
    )


def run(args: argparse.Namespace) -> int:
    """Read the lag and print it; exit 1 with a reason when it cannot be read."""
    settings = load_settings()
    group = args.group or settings.consumer_group
    topic = args.topic or settings.favorites_topic
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise CommandFailed(f"--samples must be between 1 and {MAX_SAMPLES}")
    if not 0 <= args.interval <= MAX_INTERVAL_S or not 0 < args.timeout <= 120:
        raise CommandFailed(
            f"--interval must be 0 to {MAX_INTERVAL_S:g} s and --timeout 0 to 120 s"
        )

    try:
        snapshot, evaluation = asyncio.run(
            sample_lag(
                settings.bootstrap_or_default,
                group,
                topic,
                samples=args.samples,
                interval_s=args.interval,
                timeout_s=args.timeout,
            )
        )
    except LagError as exc:
        raise CommandFailed(str(exc)) from None

    if args.json:
        sys.stdout.write(json.dumps(lag_report(snapshot, evaluation)) + "\n")
    else:
        sys.stdout.write(format_table(snapshot, evaluation))
    return 0


async def sample_lag(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    samples: int = 1,
    interval_s: float = 1.0,
    timeout_s: float = 10.0,
) -> tuple[LagSnapshot, LagEvaluation]:
    """Read the lag ``samples`` times and judge the series.

    Raises:
        LagError: the group or topic does not exist, or the broker did not answer.
    """
    evaluator = LagEvaluator(window=max(2, samples), min_points=min(3, samples))
    async with LagReader(bootstrap, timeout_s=timeout_s) as reader:
        snapshot = await reader.read(group, topic)
        evaluation = evaluator.add(snapshot)
        for _ in range(samples - 1):
            await asyncio.sleep(interval_s)
            snapshot = await reader.read(group, topic)
            evaluation = evaluator.add(snapshot)
    return snapshot, evaluation


def lag_report(snapshot: LagSnapshot, evaluation: LagEvaluation) -> dict[str, Any]:
    """The JSON object ``lag --json`` prints."""
    report = snapshot.to_json()
    report["status"] = evaluation.status.value
    verdicts = {v.partition: v for v in evaluation.partitions}
    for part in report["partitions"]:
        verdict = verdicts.get(part["partition"])
        part["status"] = verdict.status.value if verdict else "OK"
        part["reason"] = verdict.reason if verdict else ""
    return report


def format_table(snapshot: LagSnapshot, evaluation: LagEvaluation) -> str:
    """The human-readable table ``lag`` prints."""
    verdicts = {v.partition: v for v in evaluation.partitions}
    lines = [
        f"group {snapshot.group}  topic {snapshot.topic}  "
        f"status {evaluation.status.value}  total lag {snapshot.total}",
        f"{'partition':>9}  {'committed':>12}  {'end':>12}  {'lag':>10}  status",
    ]
    for part in snapshot.partitions:
        committed = "-" if part.committed is None else str(part.committed)
        verdict = verdicts.get(part.partition)
        status = verdict.status.value if verdict else "OK"
        lines.append(
            f"{part.partition:>9}  {committed:>12}  {part.end_offset:>12}  "
            f"{part.lag:>10}  {status}"
        )
    return "\n".join(lines) + "\n"
