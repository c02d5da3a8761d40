"""The dashboard: drives the pipeline and watches every hop of it.

:class:`DashboardApp` either starts a :class:`~pipeline_core.stack.Stack` (broker,
backend and consumer as supervised children) or attaches to running services, runs
the bot in this process on the local gateway, and shows seven panels fed from the
real sources: the stack, the bot, the topic, its dead letters, lag, stored
favourites and traces.

Nothing blocks the UI's loop: Kafka and HTTP are asyncio workers, the database is
read in a thread worker, and every buffer is bounded. The app never writes to
stdout; its logs go wherever the caller sends the ``logging`` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import SecretStr
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    RichLog,
    Sparkline,
)
from textual.worker import WorkerError

from pipeline_core.lag import LagEvaluation, LagEvaluator, LagSnapshot, LagStatus
from pipeline_core.stack import (
    ComponentError,
    ComponentProcess,
    ComponentState,
    Stack,
    StackConfig,
    StackError,
)
from tui.model import (
    DeadLetter,
    DeadLetterBuffer,
    LagTrend,
    RecordBuffer,
    TopicRecord,
    Trace,
    TraceBook,
    behind_from_stamp,
    describe_behind,
    format_age,
    parse_user,
)
from tui.screens import BurstScreen, DetailScreen
from tui.sources import (
    HTTP_TIMEOUT_S,
    BurstResult,
    FavouriteRow,
    StampReader,
    TopicTail,
    catalog_recipe_ids,
    inject_malformed_record,
    probe_health,
    read_applied,
    read_favourites,
    send_burst,
)
from tui.table_rows import Row, TableRows

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pipeline_core.gateway import Exchange, LocalGateway

logger = logging.getLogger(__name__)

#: Topic rows drawn at once (the buffer keeps more; the filter searches them all).
TOPIC_ROWS = 100
#: The topic table's columns and their widths (fixed, so that rows changed in place
#: never make Textual measure the table again).
TOPIC_COLUMNS = (
    ("p", 2),
    ("offset", 9),
    ("key", 20),
    ("type", 20),
    ("user", 18),
    ("recipe", 6),
    ("trace id", 40),
    ("age", 4),
)
#: Dead-letter rows drawn at once (the buffer keeps more).
DEAD_LETTER_ROWS = 100
#: The dead-letter table's columns and their widths: where it sits on the dead-letter
#: topic, where the original record was (``partition/offset``), why, and its age.
DEAD_LETTER_COLUMNS = (
    ("p", 2),
    ("offset", 7),
    ("source", 12),
    ("error", 23),
    ("age", 4),
)
#: Bot exchanges the chat log keeps.
CHAT_LINES = 500
#: Seconds between lag reads, health probes and favourites reads.
LAG_INTERVAL_S = 1.0
HEALTH_INTERVAL_S = 1.0
FAVOURITES_INTERVAL_S = 1.5
#: Seconds between two redraws of the topic table at most, and under a flood (when
#: a whole table of new records came in since the last redraw, every row changes,
#: so redrawing less often frees the loop for key presses without hiding anything
#: a reader could follow).
TOPIC_REDRAW_S = 0.25
TOPIC_FLOOD_REDRAW_S = 0.5
#: Longest pause between two attempts to reconnect a Kafka reader, in seconds.
RECONNECT_MAX_S = 5.0
#: Worker groups that read until the dashboard shuts down, and how long each of
#: them gets to close its clients then.
FEED_GROUPS = frozenset({"topic", "lag", "bot", "database"})
FEED_STOP_TIMEOUT_S = 15.0
#: Worker groups that are cancelled at shutdown (their clients close under them).
CANCELLED_GROUPS = frozenset({"connect", "health"})
#: The garbage collector's thresholds once the dashboard runs: a larger youngest
#: generation lets the flood's short-lived objects die there, so far fewer reach the
#: oldest generation, whose collections are what pauses the loop.
GC_THRESHOLDS = (20_000, 20, 20)
#: Seconds a consumer restart may take.
RESTART_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Addresses:
    """Where the services of a running stack answer."""

    kafka_bootstrap: str
    backend_url: str
    database_url: str


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard connects to.

    Exactly one of ``stack`` (start this stack) and ``attach`` (use these running
    services) is set.

    Attributes:
        topic: the interactions topic.
        group: the storing consumer's group.
        stack: the stack to start and stop with the dashboard.
        attach: the addresses of services that already run.
        api_token: the backend's token when attaching (a started stack has its own).
        run_bot: run the bot in-process on the local gateway.
    """

    topic: str
    group: str
    stack: StackConfig | None = None
    attach: Addresses | None = None
    api_token: SecretStr | None = None
    run_bot: bool = True

    def __post_init__(self) -> None:
        if (self.stack is None) == (self.attach is None):
            raise ValueError("give either a stack to start or addresses to attach to")


class DashboardApp(App[int]):
    """The recipe pipeline's dashboard."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "recipe-pipeline"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "focus_command", "send command"),
        Binding("b", "burst", "burst"),
        Binding("p", "toggle_topic_pause", "pause view"),
        Binding("slash", "focus_filter", "filter"),
        Binding("c", "toggle_consumer", "pause consumer"),
        Binding("k", "kill_consumer", "kill consumer"),
        Binding("r", "restart_consumer", "restart consumer"),
        Binding("m", "inject_malformed", "malformed record"),
        Binding("escape", "focus_topic", "topic", show=False),
        Binding("q", "quit", "quit"),
    ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette: Textual's own commands, then every footer action."""
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or not binding.show:
                continue
            if binding.action == "quit":
                continue
            yield SystemCommand(
                binding.description.capitalize(),
                f"the dashboard's {binding.description} action (key {binding.key})",
                partial(self.run_action, binding.action),
            )

    class Connected(Message):
        """The stack answers (started or attached); the addresses are known."""

        def __init__(self, addresses: Addresses) -> None:
            super().__init__()
            self.addresses = addresses

    class ConnectFailed(Message):
        """The stack could not be started or reached."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class ExchangeFinished(Message):
        """The bot finished answering a command."""

        def __init__(self, exchange: Exchange, trace_id: str | None) -> None:
            super().__init__()
            self.exchange = exchange
            self.trace_id = trace_id

    class BurstFinished(Message):
        """A burst of load through the API ended."""

        def __init__(self, result: BurstResult) -> None:
            super().__init__()
            self.result = result

    class ActionDone(Message):
        """An action on the pipeline finished (kill, restart, pause, inject)."""

        def __init__(self, action: str, detail: str, ok: bool = True) -> None:
            super().__init__()
            self.action = action
            self.detail = detail
            self.ok = ok

    def __init__(self, config: DashboardConfig) -> None:
        super().__init__()
        self.config = config
        self.records = RecordBuffer()
        self.dead_letters = DeadLetterBuffer()
        #: partition -> timestamp of its oldest record not yet committed (lag > 0)
        self.lag_stamps: dict[int, datetime] = {}
        self.traces = TraceBook()
        self.lag_trend = LagTrend()
        self.lag_evaluator = LagEvaluator(window=10)
        self.lag_snapshot: LagSnapshot | None = None
        self.lag_evaluation: LagEvaluation | None = None
        self.lag_error: str | None = None
        self.favourites: list[FavouriteRow] = []
        self.exchanges: deque[Exchange] = deque(maxlen=CHAT_LINES)
        self.backend_health = "unknown"
        self.selected_trace: str | None = None
        self.addresses: Addresses | None = None
        self.stack: Stack | None = None
        self.gateway: LocalGateway | None = None
        self.bot_state = "off" if not config.run_bot else "waiting"
        self._feeds_stop = asyncio.Event()
        self._topic_dirty = False
        self._topic_counts_dirty = False
        self._topic_drawn_at = 0.0
        self._topic_drawn_seen = 0
        #: the records the topic table shows, in its row order
        self._topic_shown: list[TopicRecord] = []
        self._dead_letters_dirty = False
        #: the dead letters the dead-letter table shows, in its row order
        self._dead_letters_shown: list[DeadLetter] = []
        self._tables: dict[str, TableRows] = {}
        self._db_engine: Engine | None = None
        self._api: httpx.AsyncClient | None = None
        self._ui_thread = threading.get_ident()
        self._shut_down = False
        #: why the stack could not be started or reached, if it could not
        self.failure: str | None = None

    # -- layout ----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="stack", classes="panel") as panel:
            panel.border_title = "stack"
            yield DataTable(id="stack-table", cursor_type="none")
        with Vertical(id="lag", classes="panel") as panel:
            panel.border_title = "lag"
            yield Label("status: waiting for the consumer group", id="lag-status")
            yield Sparkline([], id="lag-trend")
            yield DataTable(id="lag-table", cursor_type="none")
        with Vertical(id="trace", classes="panel") as panel:
            panel.border_title = "trace"
            yield Label("select a record or send a command", id="trace-title")
            yield DataTable(id="trace-table", cursor_type="none")
        with Vertical(id="topic", classes="panel") as panel:
            panel.border_title = "topic"
            yield Input(
                placeholder="filter: any words (user, recipe, trace…)", id="filter"
            )
            yield DataTable(id="topic-table", cursor_type="row")
        with Vertical(id="bot", classes="panel") as panel:
            panel.border_title = "bot"
            yield RichLog(id="chat", max_lines=CHAT_LINES, wrap=True, markup=False)
            with Horizontal(id="command-row"):
                yield Input("1001 Ada", id="user", placeholder="ID NAME")
                yield Input(placeholder="/favorite add recipe:12", id="command")
        with Vertical(id="dead-letters", classes="panel") as panel:
            panel.border_title = "dead letters"
            panel.border_subtitle = "none yet"
            yield DataTable(id="dead-letters-table", cursor_type="row")
        with Vertical(id="favourites", classes="panel") as panel:
            panel.border_title = "favourites"
            yield DataTable(id="favourites-table", cursor_type="none")
        with Horizontal(id="status-bar"):
            yield Label("starting…", id="status")
            yield ProgressBar(id="progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self._ui_thread = threading.get_ident()
        columns = {
            "stack": ("component", "state", "pid", "health", "restarts"),
            "lag": ("partition", "committed", "end", "lag", "behind", "status"),
            "trace": ("hop", "time", "latency"),
            "favourites": ("user", "recipe", "source", "stored"),
        }
        for name, labels in columns.items():
            table = self.query_one(f"#{name}-table", DataTable)
            table.add_columns(*labels)
            self._tables[name] = TableRows(table, update_width=True)
        topic_table = self.query_one("#topic-table", DataTable)
        for label, width in TOPIC_COLUMNS:
            topic_table.add_column(label, width=width)
        self._tables["topic"] = TableRows(topic_table, update_width=False)
        dead_table = self.query_one("#dead-letters-table", DataTable)
        for label, width in DEAD_LETTER_COLUMNS:
            dead_table.add_column(label, width=width)
        self._tables["dead-letters"] = TableRows(dead_table, update_width=False)
        self._render_stack()
        self.connect()

    # -- connecting --------------------------------------------------------------

    @work(exclusive=True, group="connect")
    async def connect(self) -> None:
        """Start the stack (or check the attached one), then start every feed."""
        try:
            addresses, token = await self._open_stack()
        except (StackError, OSError) as exc:
            self.post_message(self.ConnectFailed(str(exc)))
            return
        self.addresses = addresses
        headers = (
            {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        )
        self._api = httpx.AsyncClient(
            base_url=addresses.backend_url, headers=headers, timeout=HTTP_TIMEOUT_S
        )
        self.post_message(self.Connected(addresses))

    async def _open_stack(self) -> tuple[Addresses, SecretStr | None]:
        if self.config.attach is not None:
            self.progress("attached to running services")
            return self.config.attach, self.config.api_token
        assert self.config.stack is not None
        self.stack = Stack(
            self.config.stack,
            on_progress=self.progress,
            on_component_state=lambda _c: self._call_on_ui(self._render_stack),
        )
        await self.stack.start()
        info = self.stack.addresses()
        addresses = Addresses(
            info["kafka_bootstrap"], info["backend_url"], info["database_url"]
        )
        return addresses, self.stack.api_token

    def on_dashboard_app_connected(self, message: Connected) -> None:
        self.progress(f"connected: backend {message.addresses.backend_url}", done=True)
        settle_heap()
        self.tail_topic()
        self.watch_lag()
        if self.config.run_bot:
            self.run_bot()
        self.set_interval(HEALTH_INTERVAL_S, self.check_health)
        self.set_interval(FAVOURITES_INTERVAL_S, self.read_database)
        self.set_interval(TOPIC_REDRAW_S, self._redraw_topic)

    def on_dashboard_app_connect_failed(self, message: ConnectFailed) -> None:
        self.failure = message.reason
        self.progress(f"could not start: {message.reason}", done=True)
        self.notify(message.reason, title="stack", severity="error", timeout=30)
        self._render_stack()

    def progress(self, step: str, *, done: bool = False) -> None:
        """Show a step of long work in the status bar (any thread may call this)."""

        def show() -> None:
            self.query_one("#status", Label).update(step)
            bar = self.query_one("#progress", ProgressBar)
            bar.display = not done
            if not done:
                bar.update(total=None)

        self._call_on_ui(show)

    def _call_on_ui(self, callback: Callable[[], Any]) -> None:
        if not self.is_running:
            return
        if threading.get_ident() == self._ui_thread:
            callback()
        else:
            self.call_from_thread(callback)

    # -- feeds -----------------------------------------------------------------

    @work(exclusive=True, group="topic")
    async def tail_topic(self) -> None:
        """Read the topic and its dead letters live, forever, reconnecting."""
        assert self.addresses is not None
        delay = 0.5
        while not self._feeds_stop.is_set():
            try:
                async with TopicTail(
                    self.addresses.kafka_bootstrap, self.config.topic
                ) as tail:
                    delay = 0.5
                    self._set_panel_subtitle("topic", "live")
                    while not self._feeds_stop.is_set():
                        batch = await tail.next_batch()
                        if batch:
                            self._take_records(batch)
            except Exception as exc:
                logger.warning("topic tail failed: %s", exc, exc_info=True)
                self._set_panel_subtitle("topic", f"reconnecting: {exc}")
                await self._pause_feed(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _pause_feed(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the dashboard is shutting down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._feeds_stop.wait(), seconds)

    def _take_records(self, batch: list[TopicRecord]) -> None:
        if self.records.extend(batch):
            self._topic_dirty = True
        self._topic_counts_dirty = True
        if self.dead_letters.add_from(batch):
            self._dead_letters_dirty = True
        for record in batch:
            self.traces.record_topic(record)

    @work(exclusive=True, group="lag")
    async def watch_lag(self) -> None:
        """Read the group's lag every second and judge it."""
        from pipeline_core.lag import LagError, LagReader

        assert self.addresses is not None
        bootstrap = self.addresses.kafka_bootstrap
        while not self._feeds_stop.is_set():
            try:
                async with (
                    LagReader(bootstrap) as reader,
                    StampReader(bootstrap, self.config.topic) as stamps,
                ):
                    while not self._feeds_stop.is_set():
                        try:
                            snapshot = await reader.read(
                                self.config.group, self.config.topic
                            )
                        except LagError as exc:
                            self.lag_error = str(exc)
                        else:
                            self.lag_stamps = await read_waiting_stamps(
                                stamps, snapshot
                            )
                            self._take_lag(snapshot)
                        self._render_lag()
                        await self._pause_feed(LAG_INTERVAL_S)
            except Exception as exc:
                logger.warning("lag reader failed: %s", exc, exc_info=True)
                self.lag_error = f"lag reader failed: {exc}"
                self._render_lag()
                await self._pause_feed(RECONNECT_MAX_S)

    def _take_lag(self, snapshot: LagSnapshot) -> None:
        self.lag_error = None
        self.lag_snapshot = snapshot
        self.lag_evaluation = self.lag_evaluator.add(snapshot)
        self.lag_trend.add(snapshot.total)

    @work(exclusive=True, group="bot")
    async def run_bot(self) -> None:
        """Run the bot in this process on the local gateway until the app closes."""
        from bot.app import build_bot
        from pipeline_core.gateway import LocalGateway
        from pipeline_core.settings import load_settings

        assert self.addresses is not None
        token = self.stack.api_token if self.stack else self.config.api_token
        settings = load_settings(
            backend_url=self.addresses.backend_url, api_token=token
        )
        self.bot_state = "starting"
        try:
            async with LocalGateway(build_bot(settings)) as gateway:
                self.gateway = gateway
                self.bot_state = "running (local gateway)"
                settle_heap()
                unsubscribe = gateway.subscribe(self._on_exchange)
                try:
                    await self._feeds_stop.wait()
                finally:
                    unsubscribe()
                    self.gateway = None
        except Exception as exc:
            logger.exception("the bot stopped")
            self.bot_state = f"failed: {exc}"
        else:
            self.bot_state = "stopped"
        self._render_stack()

    def _on_exchange(self, exchange: Exchange) -> None:
        from bot.actions import trace_id_for

        trace_id = None
        if exchange.event_id is not None:
            trace_id = trace_id_for(int(exchange.event_id))
        self.post_message(self.ExchangeFinished(exchange, trace_id))

    def on_dashboard_app_exchange_finished(self, message: ExchangeFinished) -> None:
        exchange = message.exchange
        self.exchanges.append(exchange)
        chat = self.query_one("#chat", RichLog)
        chat.write(f"{exchange.user_id} > {exchange.text}")
        for reply in exchange.replies or ["(no reply)"]:
            chat.write(f"  bot > {reply}")
        if exchange.error:
            chat.write(f"  ! {exchange.error}")
        if message.trace_id is not None:
            self.traces.record_exchange(
                message.trace_id,
                command=exchange.text,
                user=exchange.user_id,
                started_at=exchange.started_at,
                finished_at=exchange.finished_at,
                reply=" / ".join(exchange.replies),
            )
            self.select_trace(message.trace_id)

    def check_health(self) -> None:
        """Notice crashed children, then probe the backend."""
        if self.stack is not None:
            for component in self.stack.components.values():
                component.check()
        self.probe_backend()

    @work(exclusive=True, group="health")
    async def probe_backend(self) -> None:
        if self._api is not None and not self._shut_down:
            self.backend_health = await probe_health(self._api)
        self._render_stack()

    def read_database(self) -> None:
        """Read the stored favourites and the traces' store times, in a thread."""
        if self.addresses is not None:
            self._read_database(
                self.addresses.database_url, self.traces.waiting_for_store()
            )

    @work(exclusive=True, group="database", thread=True)
    def _read_database(self, database_url: str, waiting: list[str]) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from pipeline_core.storage import make_engine

        if self._db_engine is None:
            self._db_engine = make_engine(database_url)
        try:
            favourites = read_favourites(self._db_engine)
            applied = read_applied(self._db_engine, waiting)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc)
            self.call_from_thread(
                self._set_panel_subtitle, "favourites", f"not readable: {reason}"
            )
            return
        self.call_from_thread(self._take_database, favourites, applied)

    def _take_database(
        self, favourites: list[FavouriteRow], applied: dict[str, datetime]
    ) -> None:
        self.favourites = favourites
        for trace_id, applied_at in applied.items():
            self.traces.record_stored(trace_id, applied_at)
        self._set_panel_subtitle("favourites", f"{len(favourites)} newest")
        self._render_favourites()
        self._render_trace()

    # -- actions -----------------------------------------------------------------

    def action_focus_command(self) -> None:
        self.query_one("#command", Input).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_focus_topic(self) -> None:
        self.query_one("#topic-table", DataTable).focus()

    def action_toggle_topic_pause(self) -> None:
        paused = self.records.toggle_pause()
        self._set_panel_subtitle("topic", "paused" if paused else "live")
        self._topic_dirty = True

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.records.filter_text = event.value
        self._topic_dirty = True

    @on(Input.Submitted, "#command")
    def _command_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        try:
            user_id, user_name = parse_user(self.query_one("#user", Input).value)
        except ValueError as exc:
            self.notify(str(exc), title="bot", severity="error")
            return
        event.input.value = ""
        self.send_command(text, user_id, user_name)

    @work(group="commands")
    async def send_command(self, text: str, user_id: str, user_name: str) -> None:
        """Send a command to the bot as the given user."""
        from pipeline_core.gateway import LocalGatewayError

        if self.gateway is None:
            self.notify("the bot is not running yet", title="bot", severity="warning")
            return
        try:
            await self.gateway.send(text, user_id=user_id, user_name=user_name)
        except LocalGatewayError as exc:
            self.query_one("#chat", RichLog).write(f"! {exc}")

    def action_burst(self) -> None:
        if self._api is None:
            self.notify("the backend is not connected yet", severity="warning")
            return

        def chosen(values: tuple[int, int] | None) -> None:
            if values is not None:
                self.burst(*values)

        self.push_screen(BurstScreen(), chosen)

    @work(exclusive=True, group="burst")
    async def burst(self, count: int, rate: int) -> None:
        """Send ``count`` favourites through the API at ``rate`` per second."""
        assert self._api is not None
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=count, progress=0)
        self.query_one("#status", Label).update(f"burst: {count} at {rate}/s")
        try:
            recipes = await catalog_recipe_ids(self._api)
            result = await send_burst(
                self._api,
                count=count,
                rate=rate,
                recipe_ids=recipes,
                on_progress=lambda r: bar.update(progress=r.accepted + r.failed),
            )
        except (httpx.HTTPError, ValueError) as exc:
            self.post_message(self.ActionDone("burst", str(exc), ok=False))
            return
        self.post_message(self.BurstFinished(result))

    def on_dashboard_app_burst_finished(self, message: BurstFinished) -> None:
        result = message.result
        text = f"burst: {result.accepted} accepted, {result.failed} failed"
        if result.last_error:
            text += f" (last error: {result.last_error})"
        self.progress(text, done=True)

    def _consumer(self) -> ComponentProcess | None:
        if self.stack is None or "consumer" not in self.stack.components:
            self.notify(
                "the consumer was not started by this dashboard (attached)",
                severity="warning",
            )
            return None
        return self.stack.consumer

    def action_toggle_consumer(self) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        try:
            if consumer.state is ComponentState.PAUSED:
                consumer.resume()
                self.post_message(self.ActionDone("resume", "consumer resumed"))
            else:
                consumer.pause()
                self.post_message(self.ActionDone("pause", "consumer paused"))
        except ComponentError as exc:
            self.post_message(self.ActionDone("pause", str(exc), ok=False))

    @work(exclusive=True, group="consumer")
    async def action_kill_consumer(self) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        try:
            await consumer.kill()
        except ComponentError as exc:
            self.post_message(self.ActionDone("kill", str(exc), ok=False))
            return
        self.post_message(self.ActionDone("kill", "consumer killed with SIGKILL"))

    @work(exclusive=True, group="consumer")
    async def action_restart_consumer(self) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        self.progress("restarting the consumer")
        try:
            await consumer.restart(RESTART_TIMEOUT_S)
        except ComponentError as exc:
            self.post_message(self.ActionDone("restart", str(exc), ok=False))
            return
        self.post_message(self.ActionDone("restart", "consumer restarted"))

    @work(exclusive=True, group="inject")
    async def action_inject_malformed(self) -> None:
        from aiokafka.errors import KafkaError

        if self.addresses is None:
            return
        try:
            partition, offset = await inject_malformed_record(
                self.addresses.kafka_bootstrap, self.config.topic
            )
        except (KafkaError, TimeoutError) as exc:
            self.post_message(self.ActionDone("inject", str(exc), ok=False))
            return
        self.post_message(
            self.ActionDone("inject", f"malformed record at {partition}/{offset}")
        )

    def on_dashboard_app_action_done(self, message: ActionDone) -> None:
        self.progress(message.detail, done=True)
        self.notify(
            message.detail,
            title=message.action,
            severity="information" if message.ok else "error",
        )
        self._render_stack()

    @on(DataTable.RowSelected, "#topic-table")
    def _record_selected(self, event: DataTable.RowSelected) -> None:
        index = TableRows.index_of(event.row_key)
        if index >= len(self._topic_shown):
            return
        record = self._topic_shown[index]
        partition, offset = record.partition, record.offset
        if record.trace_id is not None:
            self.select_trace(record.trace_id)
        self.push_screen(DetailScreen(f"record {partition}/{offset}", record.detail()))

    @on(DataTable.RowSelected, "#dead-letters-table")
    def _dead_letter_selected(self, event: DataTable.RowSelected) -> None:
        index = TableRows.index_of(event.row_key)
        if index >= len(self._dead_letters_shown):
            return
        letter = self._dead_letters_shown[index]
        record = letter.record
        title = f"dead letter {record.partition}/{record.offset}"
        body = f"error: {letter.error or '(no dlq-error header)'}\n{record.detail()}"
        self.push_screen(DetailScreen(title, body))

    def select_trace(self, trace_id: str) -> None:
        """Show the trace with that id in the trace panel."""
        self.selected_trace = trace_id
        self._render_trace()

    async def action_quit(self) -> None:
        self.progress("stopping everything this dashboard started")
        await self.shutdown()
        self.exit(0)

    async def shutdown(self) -> None:
        """Stop the feeds and the bot, then the stack if this dashboard started it.

        Safe to call more than once; the command calls it again after the app
        ended, whatever way it ended (quit, SIGTERM, a crash).
        """
        if self._shut_down:
            return
        self._shut_down = True
        self._feeds_stop.set()
        for worker in list(self.workers):
            if worker.group in CANCELLED_GROUPS:
                worker.cancel()
            elif worker.group not in FEED_GROUPS:
                continue
            with contextlib.suppress(WorkerError, TimeoutError):
                await asyncio.wait_for(worker.wait(), FEED_STOP_TIMEOUT_S)
        if self.stack is not None:
            await self.stack.stop()
        if self._api is not None:
            await self._api.aclose()
        if self._db_engine is not None:
            self._db_engine.dispose()

    # -- rendering ---------------------------------------------------------------

    def _set_panel_subtitle(self, panel: str, text: str) -> None:
        self.query_one(f"#{panel}", Vertical).border_subtitle = text

    def _render_stack(self) -> None:
        table = self._tables.get("stack")
        if table is not None:
            table.show(self.stack_rows())

    def stack_rows(self) -> list[tuple[str, str, str, str, str]]:
        """One row per part of the pipeline: component, state, pid, health, restarts."""
        rows: list[tuple[str, str, str, str, str]] = []
        if self.stack is not None:
            broker = self.stack.broker
            if broker is not None:
                state = "running" if broker.running else "stopped"
                rows.append(("broker", state, str(broker.pid or ""), "", ""))
            elif self.stack.config.bootstrap:
                rows.append(("broker", "external", "", "", ""))
            for name, component in self.stack.components.items():
                health = self.backend_health if name == "backend" else ""
                rows.append(
                    (
                        name,
                        component.state.value,
                        str(component.pid or ""),
                        health,
                        str(component.restarts),
                    )
                )
        elif self.addresses is not None:
            rows.append(("broker", "attached", "", self.addresses.kafka_bootstrap, ""))
            rows.append(("backend", "attached", "", self.backend_health, ""))
            rows.append(("consumer", "attached", "", "", ""))
        rows.append(("bot", self.bot_state, "in-process", "", ""))
        return rows

    def _render_lag(self) -> None:
        status = self.query_one("#lag-status", Label)
        trend = self.query_one("#lag-trend", Sparkline)
        values = self.lag_trend.values()
        if trend.data != values:
            trend.data = values
        if self.lag_error is not None:
            _update_label(status, f"status: ? ({self.lag_error})")
            return
        snapshot, evaluation = self.lag_snapshot, self.lag_evaluation
        if snapshot is None or evaluation is None:
            return
        verdicts = {v.partition: v for v in evaluation.partitions}
        _update_label(
            status, f"status: {evaluation.status.value}   total lag: {snapshot.total}"
        )
        status.set_class(evaluation.status is not LagStatus.OK, "alarm")
        now = datetime.now(UTC)
        rows: list[Row] = []
        for part in snapshot.partitions:
            stamp = self.lag_stamps.get(part.partition)
            if stamp is None and part.committed is not None:
                stamp = self.records.timestamp_at(
                    self.config.topic, part.partition, part.committed
                )
            behind = behind_from_stamp(part.lag, stamp, now)
            verdict = verdicts.get(part.partition)
            rows.append(
                (
                    str(part.partition),
                    "-" if part.committed is None else str(part.committed),
                    str(part.end_offset),
                    str(part.lag),
                    describe_behind(behind),
                    verdict.status.value if verdict else "",
                )
            )
        self._tables["lag"].show(rows)

    def _redraw_topic(self) -> None:
        """Bring the topic table and counts up to date (at most every tick).

        Only the cells whose text changed are touched; with nothing new, nothing is.
        """
        if self._topic_dirty and not self._topic_flood_wait():
            self._topic_dirty = False
            self._topic_drawn_at = time.monotonic()
            self._topic_drawn_seen = self.records.seen
            now = datetime.now(UTC)
            self._topic_shown = self.records.visible(TOPIC_ROWS)
            self._tables["topic"].show(
                [topic_row(record, now) for record in self._topic_shown]
            )
        if self._dead_letters_dirty:
            self._dead_letters_dirty = False
            self._render_dead_letters(now=datetime.now(UTC))
        if self._topic_counts_dirty:
            self._topic_counts_dirty = False
            subtitle = "paused" if self.records.paused else "live"
            self._set_panel_subtitle(
                "topic",
                f"{subtitle} · {len(self.records)} kept · {self.records.seen} seen",
            )

    def _render_dead_letters(self, now: datetime) -> None:
        self._dead_letters_shown = self.dead_letters.newest(DEAD_LETTER_ROWS)
        self._tables["dead-letters"].show(
            [
                dead_letter_row(letter, self.config.topic, now)
                for letter in self._dead_letters_shown
            ]
        )
        self._set_panel_subtitle(
            "dead-letters",
            f"{len(self.dead_letters)} kept · {self.dead_letters.seen} seen",
        )

    def _topic_flood_wait(self) -> bool:
        """Whether a flooded topic table waits for :data:`TOPIC_FLOOD_REDRAW_S`."""
        flooded = self.records.seen - self._topic_drawn_seen >= TOPIC_ROWS
        waited = time.monotonic() - self._topic_drawn_at
        return flooded and waited < TOPIC_FLOOD_REDRAW_S

    def _render_favourites(self) -> None:
        self._tables["favourites"].show(
            [
                (
                    f"{row.user_name} ({row.user_id})",
                    row.recipe_id,
                    row.source,
                    row.stored_at.strftime("%H:%M:%S"),
                )
                for row in self.favourites
            ]
        )

    def _render_trace(self) -> None:
        trace: Trace | None = None
        if self.selected_trace is not None:
            trace = self.traces.get(self.selected_trace)
        if trace is None:
            return
        title = f"{trace.trace_id}"
        if trace.command:
            title += f"  “{trace.command}”"
        _update_label(self.query_one("#trace-title", Label), title)
        self._tables["trace"].show(trace.rows())


def settle_heap() -> None:
    """Move every object alive now out of the garbage collector's reach.

    Called once the long-lived parts exist (the stack's clients, the bot): they are
    most of the heap, and every full collection walked all of them, which under a
    message flood stopped the dashboard for 50 to 230 ms several times a minute
    (key presses waited that long). Objects made later are collected as before;
    what was frozen stays until the process ends, so the cost is at most one copy
    of the bounded buffers alive at that moment.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    logger.debug("heap settled: %d objects frozen", gc.get_freeze_count())


def _update_label(label: Label, text: str) -> None:
    """Show ``text`` in ``label``; the same text again costs no redraw."""
    if str(label.content) != text:
        label.update(text)


def topic_row(record: TopicRecord, now: datetime) -> tuple[str, ...]:
    """The topic table's cells for one record."""
    if record.error is not None:
        kind = "DEAD LETTER" if record.dead_letter else "malformed"
        return (
            str(record.partition),
            str(record.offset),
            record.key,
            kind,
            "",
            "",
            record.error[:40],
            format_age(record.timestamp, now),
        )
    kind = record.event_type or ""
    if record.dead_letter:
        kind = f"DLQ {kind}"
    return (
        str(record.partition),
        str(record.offset),
        record.key,
        kind,
        record.user_name or "",
        record.recipe_id or "",
        record.trace_id or "",
        format_age(record.timestamp, now),
    )


def dead_letter_row(letter: DeadLetter, topic: str, now: datetime) -> tuple[str, ...]:
    """The dead-letter table's cells for one dead letter (``topic``: the source
    topic the panel leaves out of the source cell)."""
    record = letter.record
    return (
        str(record.partition),
        str(record.offset),
        letter.source(topic),
        (letter.error or "(no dlq-error header)")[:200],
        format_age(record.timestamp, now),
    )


async def read_waiting_stamps(
    reader: StampReader, snapshot: LagSnapshot
) -> dict[int, datetime]:
    """The timestamp of each lagging partition's oldest waiting record.

    That record is at ``end_offset - lag`` (the committed offset, or the start of
    the log when the group never committed there). One bounded fetch per partition;
    a failed read leaves the stamps unknown rather than stopping the lag feed.
    """
    from aiokafka.errors import KafkaError

    waiting = {
        part.partition: part.end_offset - part.lag
        for part in snapshot.partitions
        if part.lag > 0
    }
    if not waiting:
        return {}
    try:
        return await reader.read(waiting)
    except (KafkaError, TimeoutError) as exc:
        logger.warning("could not read the waiting records' timestamps: %s", exc)
        return {}
