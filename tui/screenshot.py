"""Make the README's SVG screenshot of the dashboard on a real, busy stack.

``python -m tui.screenshot docs/dashboard.svg [--data-dir DIR]`` starts the stack
the way ``recipe-pipeline dashboard`` does (the embedded broker unless
``KAFKA_BOOTSTRAP_SERVERS`` is set), sends two bot commands and a small burst,
waits until they are stored, selects the first command's trace and saves the
screen. It prints nothing; the exit code says whether it worked.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from pipeline_core.settings import load_settings
from pipeline_core.stack import StackConfig
from tui.app import DashboardApp, DashboardConfig

SIZE = (180, 50)
WAIT_S = 180.0


async def _until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshot: no {what} within {WAIT_S:g} s")
        await pilot.pause(0.2)


async def _command(pilot: Pilot[int], user: str, text: str) -> None:
    pilot.app.query_one("#user", Input).value = user
    command = pilot.app.query_one("#command", Input)
    command.focus()
    command.value = text
    await pilot.press("enter")


async def take(out: Path, data_dir: Path) -> None:
    """Run the dashboard on a fresh stack in ``data_dir`` and save it to ``out``."""
    settings = load_settings(database_url=f"sqlite:///{data_dir / 'favorites.db'}")
    stack = StackConfig.from_settings(settings, data_dir)
    app = DashboardApp(
        DashboardConfig(
            topic=settings.favorites_topic, group=settings.consumer_group, stack=stack
        )
    )
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _until(pilot, lambda: app.gateway is not None, "running bot")
            await _command(pilot, "271828 Ada", "/favorite add recipe:1")
            await _until(pilot, lambda: len(app.exchanges) == 1, "bot reply")
            await _command(pilot, "314159 Grace", "!save 12")
            app.burst(60, 30)
            await _until(pilot, lambda: len(app.favourites) >= 62, "stored favourites")
            await _until(
                pilot,
                lambda: app.lag_snapshot is not None and app.lag_snapshot.total == 0,
                "lag back to 0",
            )
            first = app.exchanges[0]
            trace = next(t for t in app.traces if t.command == first.text)
            app.select_trace(trace.trace_id)
            await _until(pilot, lambda: trace.complete, "complete trace")
            app.action_focus_topic()
            await pilot.pause(1.0)
            app.save_screenshot(filename=out.name, path=str(out.parent))
            await app.shutdown()
    finally:
        await app.shutdown()


def main() -> int:
    """Parse the arguments and take the screenshot."""
    parser = argparse.ArgumentParser(prog="python -m tui.screenshot")
    parser.add_argument("out", type=Path, help="the SVG file to write")
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as folder:
        data_dir = args.data_dir or Path(folder)
        data_dir.mkdir(parents=True, exist_ok=True)
        logging.basicConfig(
            level=logging.INFO, filename=str(data_dir / "screenshot.log")
        )
        asyncio.run(take(args.out.resolve(), data_dir.resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
