"""The dashboard driven with Textual's Pilot against the real stack it starts.

Broker (the session's), backend and consumer (real child processes), SQLite and the
bot (in-process on the local gateway) are all real.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from pipeline_core.lag import LagStatus
from pipeline_core.stack import ComponentState, StackConfig
from tui.app import DashboardApp, DashboardConfig

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SIZE = (180, 50)


async def until(
    pilot: Pilot[int], condition: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    """Let the app run until ``condition`` holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:g} s: {what}")
        await pilot.pause(0.1)


class RecordingDashboard(DashboardApp):
    """The dashboard, keeping every message of its own it handled."""

    def __init__(self, config: DashboardConfig) -> None:
        super().__init__(config)
        self.handled: list[object] = []

    def on_dashboard_app_exchange_finished(
        self, message: DashboardApp.ExchangeFinished
    ) -> None:
        self.handled.append(message)
        super().on_dashboard_app_exchange_finished(message)

    def on_dashboard_app_action_done(self, message: DashboardApp.ActionDone) -> None:
        self.handled.append(message)
        super().on_dashboard_app_action_done(message)

    def on_dashboard_app_burst_finished(
        self, message: DashboardApp.BurstFinished
    ) -> None:
        self.handled.append(message)
        super().on_dashboard_app_burst_finished(message)


@pytest.fixture
def config(tmp_path: Path, kafka_bootstrap: str) -> DashboardConfig:
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"dash-{suffix}", f"dash-store-{suffix}"
    stack = StackConfig(
        data_dir=tmp_path / "stack",
        topic=topic,
        group=group,
        database_url=f"sqlite:///{tmp_path / 'favorites.db'}",
        bootstrap=kafka_bootstrap,
    )
    return DashboardConfig(topic=topic, group=group, stack=stack)


@pytest.fixture
async def dashboard(
    config: DashboardConfig,
) -> AsyncIterator[tuple[RecordingDashboard, Pilot[int]]]:
    app = RecordingDashboard(config)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                lambda: app.gateway is not None and app.failure is None,
                f"the stack and the bot run (failure: {app.failure})",
                timeout=120,
            )
            yield app, pilot
            await app.shutdown()
    finally:
        await app.shutdown()


async def type_command(pilot: Pilot[int], user: str, text: str) -> None:
    app = pilot.app
    app.query_one("#user", Input).value = user
    command = app.query_one("#command", Input)
    command.focus()
    command.value = text
    await pilot.press("enter")


async def test_a_slash_command_shows_in_every_panel(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """/favorite add typed in the bot panel reaches the topic panel, the favourites
    panel, lag returns to 0 and the trace has every hop."""
    app, pilot = dashboard

    await type_command(pilot, "424242 Ada", "/favorite add recipe:1")

    await until(
        pilot,
        lambda: any(r.user_id == "424242" for r in app.records.visible()),
        "record on the topic panel",
    )
    await until(
        pilot,
        lambda: any(f.user_id == "424242" for f in app.favourites),
        "row in the favourites panel",
    )
    await until(
        pilot,
        lambda: (
            app.lag_snapshot is not None
            and app.lag_snapshot.total == 0
            and any(p.committed for p in app.lag_snapshot.partitions)
        ),
        "lag back to 0",
    )
    exchanges = [m for m in app.handled if isinstance(m, DashboardApp.ExchangeFinished)]
    assert exchanges
    trace_id = exchanges[0].trace_id
    assert trace_id is not None
    await until(
        pilot,
        lambda: (t := app.traces.get(trace_id)) is not None and t.complete,
        "a trace with every hop",
    )
    assert app.selected_trace == trace_id
    assert app.failure is None


async def test_a_malformed_record_shows_in_the_dead_letter_panel_with_its_error(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """m injects a record the consumer cannot decode; the consumer dead-letters it
    and the dead-letter panel shows it with its source position and error."""
    app, pilot = dashboard

    await pilot.press("m")

    await until(
        pilot,
        lambda: app.query_one("#dead-letters-table", DataTable).row_count == 1,
        "a row in the dead-letter panel",
    )
    table = app.query_one("#dead-letters-table", DataTable)
    _p, _offset, source, error, _age = (str(cell) for cell in table.get_row_at(0))
    letter = app.dead_letters.newest()[0]
    assert letter.source_topic == app.config.topic
    assert source == f"{letter.source_partition}/{letter.source_offset}"
    assert "schema-v1" in error
    injected = [
        m
        for m in app.handled
        if isinstance(m, DashboardApp.ActionDone) and m.action == "inject"
    ]
    assert injected[-1].detail.endswith(source)


async def test_quitting_leaves_no_child_process(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """q stops the backend and the consumer the dashboard started."""
    app, pilot = dashboard
    assert app.stack is not None
    pids = [c.pid for c in app.stack.components.values()]

    await pilot.press("q")
    await app.shutdown()

    assert all(pid is not None for pid in pids)
    assert not [pid for pid in pids if pid is not None and psutil.pid_exists(pid)]
    assert {c.state for c in app.stack.components.values()} == {ComponentState.STOPPED}


async def test_killing_the_consumer_under_load_and_restarting_it(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """Kill the consumer during a burst: status leaves OK and lag grows; restart it:
    lag returns to 0 and no favourite is stored twice."""
    app, pilot = dashboard
    assert app.stack is not None
    app.burst(5, 50)
    await until(pilot, lambda: len(app.favourites) == 5, "a first burst stored")
    app.handled.clear()

    await pilot.press("k")
    await until(
        pilot,
        lambda: (
            app.stack is not None and app.stack.consumer.state is ComponentState.KILLED
        ),
        "consumer killed",
    )
    app.burst(300, 150)
    await until(
        pilot,
        lambda: any(isinstance(m, DashboardApp.BurstFinished) for m in app.handled),
        "burst finished",
        timeout=90,
    )
    await until(
        pilot,
        lambda: (
            app.lag_evaluation is not None
            and app.lag_evaluation.status is not LagStatus.OK
        ),
        "lag status leaves OK",
        timeout=90,
    )
    grown = app.lag_snapshot.total if app.lag_snapshot else 0

    await pilot.press("r")
    await until(
        pilot,
        lambda: (
            app.stack is not None and app.stack.consumer.state is ComponentState.RUNNING
        ),
        "consumer restarted",
    )
    await until(
        pilot,
        lambda: app.lag_snapshot is not None and app.lag_snapshot.total == 0,
        "lag back to 0",
        timeout=90,
    )

    burst = next(m for m in app.handled if isinstance(m, DashboardApp.BurstFinished))
    assert grown > 0
    assert app.stack.consumer.restarts == 1
    stored = await _count_favourites(app)
    assert stored == 5 + burst.result.accepted


async def _count_favourites(app: DashboardApp) -> int:
    import asyncio

    from sqlalchemy import func
    from sqlmodel import Session, select

    from pipeline_core.storage import Favorite, make_engine

    assert app.stack is not None
    engine = make_engine(app.stack.database_url)

    def count() -> int:
        with Session(engine) as session:
            return int(session.exec(select(func.count()).select_from(Favorite)).one())

    try:
        return await asyncio.to_thread(count)
    finally:
        engine.dispose()
