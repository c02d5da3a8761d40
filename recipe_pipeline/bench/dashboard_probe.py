"""The dashboard under a message flood, measured from the inside.

``python -m recipe_pipeline.bench.dashboard_probe`` runs the real dashboard app
(:class:`tui.app.DashboardApp`, attached to running services, bot off) headless with
Textual's Pilot, in a process of its own so its memory is its own. Once the topic
panel is live it writes its ready file; the benchmark then feeds the topic, and the
probe presses ``p`` (pause / resume the topic view) every :data:`PRESS_EVERY_S`.

Each press goes in the way a terminal's does (a key event handed to the app's
driver) and is timed until the first frame the app renders that shows the new
state in the topic panel's subtitle: queueing behind the flood, the binding, the
handler and the paint. (Pilot's own ``press`` is not used for the timing: it waits
for the process to go idle, which under a flood it never does, so it would time
Pilot's one-second idle waits rather than the app.)

It samples its RSS after every press and writes ``{"key_ms": [...], "rss_mb":
[...], "seen": [n], "rss_mb_end": [mb], "gc_ms": [...]}`` to ``--out``: ``seen`` is how
many records the topic panel took in, ``rss_mb_end`` the memory once they did,
``gc_ms`` how long each full garbage collection took. With
``--profile PATH`` the whole run is under :mod:`cProfile` and the statistics go to
``PATH`` (``python -m pstats PATH``); the timings are then slower than without.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core.commands import write_ready_file

if TYPE_CHECKING:
    from tui.app import DashboardApp

#: Seconds between two key presses.
PRESS_EVERY_S = 0.25
#: Longest wait for one press to show, and for the topic panel to go live.
SHOW_TIMEOUT_S = 5.0
LIVE_TIMEOUT_S = 60.0


def observed_app(config: Any) -> DashboardApp:
    """The real dashboard, noting each frame whose topic subtitle shows a state."""
    from textual.containers import Vertical

    from tui.app import DashboardApp

    class ObservedDashboard(DashboardApp):
        """:class:`DashboardApp`, telling the probe what each rendered frame shows."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            #: called with the topic subtitle each time a frame is rendered
            self.on_frame: Callable[[str], None] | None = None

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is not None and self.on_frame is not None:
                panel = self.query_one("#topic", Vertical)
                self.on_frame(str(panel.border_subtitle))

    return ObservedDashboard(config)


async def _probe(args: argparse.Namespace) -> dict[str, list[float]]:
    import psutil
    from pydantic import SecretStr
    from textual import events
    from textual.containers import Vertical

    from tui.app import Addresses, DashboardConfig

    config = DashboardConfig(
        topic=args.topic,
        group=args.group,
        attach=Addresses(args.bootstrap, args.backend_url, args.database_url),
        api_token=SecretStr(args.token),
        run_bot=False,
    )
    app = observed_app(config)
    me = psutil.Process()
    gc_ms = _watch_collections()
    key_ms: list[float] = []
    rss_mb: list[float] = []
    async with app.run_test(headless=True, size=(160, 48)):
        panel = app.query_one("#topic", Vertical)
        await _until(lambda: "live" in str(panel.border_subtitle), LIVE_TIMEOUT_S)
        write_ready_file(args.ready_file, {"pid": me.pid})
        await asyncio.sleep(args.warmup)
        driver = app._driver
        assert driver is not None
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            want = "live" if app.records.paused else "paused"
            shown = asyncio.Event()
            app.on_frame = lambda text, w=want, e=shown: (  # type: ignore[attr-defined]
                e.set() if text.startswith(w) else None
            )
            started = time.perf_counter()
            driver.send_message(events.Key("p", "p"))
            await asyncio.wait_for(shown.wait(), SHOW_TIMEOUT_S)
            key_ms.append((time.perf_counter() - started) * 1000)
            rss_mb.append(me.memory_info().rss / 2**20)
            await asyncio.sleep(PRESS_EVERY_S)
        app.on_frame = None  # type: ignore[attr-defined]
        seen = float(app.records.seen)
        rss_end = me.memory_info().rss / 2**20
        await app.shutdown()
    return {
        "key_ms": key_ms,
        "rss_mb": rss_mb,
        "seen": [seen],
        "rss_mb_end": [rss_end],
        "gc_ms": gc_ms,
    }


def _watch_collections() -> list[float]:
    """Note how long each full (oldest generation) garbage collection takes, in ms."""
    pauses: list[float] = []
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(note)
    return pauses


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    """Run the probe; 0 once the results are written."""
    parser = argparse.ArgumentParser(prog="recipe_pipeline.bench.dashboard_probe")
    for name in ("bootstrap", "topic", "group", "backend-url", "database-url"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile stats here")
    args = parser.parse_args(argv)
    args.token = os.environ.get("API_TOKEN", "")
    if args.profile is None:
        result = asyncio.run(_probe(args))
    else:
        profiler = cProfile.Profile()
        result = profiler.runcall(asyncio.run, _probe(args))
        profiler.dump_stats(args.profile)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
