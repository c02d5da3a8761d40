"""The dashboard attached to running services (the real broker), driven by Pilot.

No stack is started here: the topic panel, the actions that need only Kafka, the
record detail, the filter, the pause and the layout are checked against the
session's real broker; the backend address is a socket of ours that refuses
connections, and the database has no tables yet, so those panels show their
failure states.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from pipeline_core.events import EventType, FavoriteEvent, encode_event
from pipeline_core.stack import StackConfig
from pipeline_core.stack.topics import ensure_topics
from tui.app import Addresses, DashboardApp, DashboardConfig
from tui.screens import DetailScreen

pytestmark = pytest.mark.slow

SIZE = (180, 50)


async def until(
    pilot: Pilot[int], condition: Callable[[], bool], what: str, timeout: float = 30
) -> None:
    """Let the app run until ``condition`` holds; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout:g} s: {what}")
        await pilot.pause(0.05)


class RecordingDashboard(DashboardApp):
    """The dashboard, keeping the action messages it handled."""

    def __init__(self, config: DashboardConfig) -> None:
        super().__init__(config)
        self.done: list[DashboardApp.ActionDone] = []

    def on_dashboard_app_action_done(self, message: DashboardApp.ActionDone) -> None:
        self.done.append(message)
        super().on_dashboard_app_action_done(message)


@pytest.fixture
def refusing_backend() -> Iterator[str]:
    """A 127.0.0.1 port of ours that is bound but not listening: connections fail."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    name = f"attached-{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        kafka_bootstrap, [name, f"{name}.dlq"], partitions=3, timeout=30
    )
    return name


@pytest.fixture
async def dashboard(
    kafka_bootstrap: str, topic: str, refusing_backend: str, tmp_path: Path
) -> AsyncIterator[tuple[RecordingDashboard, Pilot[int]]]:
    addresses = Addresses(
        kafka_bootstrap, refusing_backend, f"sqlite:///{tmp_path / 'empty.db'}"
    )
    config = DashboardConfig(
        topic=topic, group=f"g-{topic}", attach=addresses, run_bot=False
    )
    app = RecordingDashboard(config)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.addresses is not None, "attached")
            await until(
                pilot,
                lambda: "live" in str(app.query_one("#topic").border_subtitle),
                "the topic tail is live",
            )
            yield app, pilot
            await app.shutdown()
    finally:
        await app.shutdown()


async def produce(bootstrap: str, topic: str, user_ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for user_id in user_ids:
            event = FavoriteEvent(
                type=EventType.ADDED,
                user_id=user_id,
                user_name=f"user {user_id}",
                recipe_id="7",
                trace_id=f"attached-{user_id}",
            )
            key, value, headers = encode_event(event)
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def topic_rows(app: DashboardApp) -> int:
    return app.query_one("#topic-table", DataTable).row_count


async def test_injecting_a_malformed_record_shows_it_on_the_topic_panel(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """m writes a record the consumer cannot decode; it shows as malformed."""
    app, pilot = dashboard

    await pilot.press("m")

    await until(pilot, lambda: len(app.records) == 1, "the record arrives")
    record = app.records.visible()[0]
    assert record.error is not None
    assert app.done[-1].action == "inject"
    assert app.done[-1].ok
    await until(pilot, lambda: topic_rows(app) == 1, "the table shows it")


async def test_filter_narrows_the_topic_table(
    dashboard: tuple[RecordingDashboard, Pilot[int]], kafka_bootstrap: str
) -> None:
    """Typing in the filter keeps only the records that match it."""
    app, pilot = dashboard
    await produce(kafka_bootstrap, app.config.topic, ["111", "222", "333"])
    await until(pilot, lambda: topic_rows(app) == 3, "three records shown")

    await pilot.press("slash")
    await pilot.press(*"222")

    await until(pilot, lambda: topic_rows(app) == 1, "only the matching record")
    assert app.query_one("#filter", Input).value == "222"
    assert app.records.visible()[0].user_id == "222"


async def test_pausing_the_view_holds_it_still(
    dashboard: tuple[RecordingDashboard, Pilot[int]], kafka_bootstrap: str
) -> None:
    """p pauses the topic view: new records are counted as missed, not shown."""
    app, pilot = dashboard

    await pilot.press("p")
    await produce(kafka_bootstrap, app.config.topic, ["444"])

    await until(pilot, lambda: app.records.missed == 1, "the record is missed")
    assert topic_rows(app) == 0
    assert "paused" in str(app.query_one("#topic").border_subtitle)


async def test_selecting_a_record_opens_its_detail(
    dashboard: tuple[RecordingDashboard, Pilot[int]], kafka_bootstrap: str
) -> None:
    """Enter on a topic row opens the detail with its JSON and headers, and selects
    its trace."""
    app, pilot = dashboard
    await produce(kafka_bootstrap, app.config.topic, ["555"])
    await until(pilot, lambda: topic_rows(app) == 1, "the record is shown")

    app.query_one("#topic-table", DataTable).focus()
    await pilot.press("enter")

    await until(pilot, lambda: isinstance(app.screen, DetailScreen), "detail opens")
    text = str(app.screen.query_one("#detail-text").render())
    assert '"user_id": "555"' in text
    assert "trace-id: attached-555" in text
    assert app.selected_trace == "attached-555"
    await pilot.press("escape")
    assert not isinstance(app.screen, DetailScreen)


async def test_consumer_actions_are_refused_when_attached(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """Kill, pause and restart need a consumer this dashboard started."""
    app, pilot = dashboard

    await pilot.press("k")
    await pilot.press("c")
    await pilot.pause()

    assert app.stack is None
    assert [row[1] for row in app.stack_rows()][:3] == ["attached"] * 3


async def test_failing_backend_and_missing_tables_show_in_their_panels(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """An unreachable backend shows as down; a database without tables says so."""
    app, pilot = dashboard

    await until(pilot, lambda: app.backend_health == "down", "backend shows down")
    await until(
        pilot,
        lambda: "not readable" in str(app.query_one("#favourites").border_subtitle),
        "favourites say the database is not readable",
    )


async def test_layout_at_a_fixed_size(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """At 180x50 the seven panels sit in their grid cells (a layout snapshot)."""
    app, _pilot = dashboard

    regions = {
        panel: tuple(app.query_one(f"#{panel}").region)
        for panel in (
            "stack",
            "lag",
            "trace",
            "topic",
            "bot",
            "dead-letters",
            "favourites",
            "status-bar",
        )
    }
    footer = app.query_one("Footer").region

    assert regions == {
        "stack": (0, 1, 60, 11),
        "lag": (60, 1, 60, 11),
        "trace": (120, 1, 60, 11),
        "topic": (0, 12, 180, 24),
        "bot": (0, 36, 60, 12),
        "dead-letters": (60, 36, 60, 12),
        "favourites": (120, 36, 60, 12),
        "status-bar": (0, 48, 180, 1),
    }
    assert footer.y == 49


async def test_a_stack_that_cannot_start_is_reported_and_leaves_nothing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """When the backend does not get ready, the dashboard shows why and records the
    failure, and the child it started is gone."""
    topic = f"fail-{uuid.uuid4().hex[:8]}"
    stack = StackConfig(
        data_dir=tmp_path,
        topic=topic,
        bootstrap=kafka_bootstrap,
        component_timeout=0.01,
    )
    app = DashboardApp(DashboardConfig(topic=topic, group="g", stack=stack))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.failure is not None, "the failure")
            status = str(app.query_one("#status").render())
            await app.shutdown()
    finally:
        await app.shutdown()

    assert app.failure is not None
    assert "backend" in app.failure
    assert "could not start" in status
    assert app.stack is not None
    assert not app.stack.backend.is_alive


async def test_footer_actions_are_in_the_command_palette(
    dashboard: tuple[RecordingDashboard, Pilot[int]],
) -> None:
    """Every footer action is a command palette entry; running one does the action."""
    app, pilot = dashboard

    titles = {command.title for command in app.get_system_commands(app.screen)}
    pause = next(
        command
        for command in app.get_system_commands(app.screen)
        if command.title == "Pause view"
    )
    await pause.callback()
    await pilot.pause()

    assert {"Send command", "Burst", "Kill consumer", "Malformed record"} <= titles
    assert "paused" in str(app.query_one("#topic").border_subtitle)
