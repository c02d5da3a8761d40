"""The dashboard under a message flood, measured from the inside.

``python -m recipe_pipeline.bench.dashboard_probe`` runs the real dashboard app
(:class:`tui.app.DashboardApp`, attached to running services, bot off) headless with
Textual's Pilot, in a process of its own so its memory is its own. Once the topic
panel is live it writes its ready file; the benchmark then feeds the topic, and the
probe presses ``p`` (pause / resume the topic view) every :data:`PRESS_EVERY_S`,
timing each press until the topic panel shows the new state, and samples its RSS.
It writes ``{"key_ms": [...], "rss_mb": [...]}`` to ``--out`` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from pipeline_core.commands import write_ready_file

#: Seconds between two key presses.
PRESS_EVERY_S = 0.25
#: Longest wait for one press to show, and for the topic panel to go live.
SHOW_TIMEOUT_S = 5.0
LIVE_TIMEOUT_S = 60.0


async def _probe(args: argparse.Namespace) -> dict[str, list[float]]:
    import psutil
    from pydantic import SecretStr
    from textual.containers import Vertical

    from tui.app import Addresses, DashboardApp, DashboardConfig

    config = DashboardConfig(
        topic=args.topic,
        group=args.group,
        attach=Addresses(args.bootstrap, args.backend_url, args.database_url),
        api_token=SecretStr(args.token),
        run_bot=False,
    )
    app = DashboardApp(config)
    me = psutil.Process()
    key_ms: list[float] = []
    rss_mb: list[float] = []
    async with app.run_test(headless=True, size=(160, 48)) as pilot:
        panel = app.query_one("#topic", Vertical)
        await _until(lambda: "live" in str(panel.border_subtitle), LIVE_TIMEOUT_S)
        write_ready_file(args.ready_file, {"pid": me.pid})
        await asyncio.sleep(args.warmup)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            expected = "live" if app.records.paused else "paused"
            started = time.perf_counter()
            await pilot.press("p")
            await _until(
                lambda want=expected: str(panel.border_subtitle).startswith(want),
                SHOW_TIMEOUT_S,
            )
            key_ms.append((time.perf_counter() - started) * 1000)
            rss_mb.append(me.memory_info().rss / 2**20)
            await asyncio.sleep(PRESS_EVERY_S)
        await app.shutdown()
    return {"key_ms": key_ms, "rss_mb": rss_mb, "seen": [float(app.records.seen)]}


async def _until(condition: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    """Run the probe; 0 once the results are written."""
    parser = argparse.ArgumentParser(prog="recipe_pipeline.bench.dashboard_probe")
    for name in ("bootstrap", "topic", "group", "backend-url", "database-url"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    args.token = os.environ.get("API_TOKEN", "")
    result = asyncio.run(_probe(args))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
