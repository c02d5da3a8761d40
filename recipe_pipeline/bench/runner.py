"""One benchmark run: the broker, the parts, each phase, and everything stopped after.

:func:`run_benchmark` measures, in this order, on one broker:

1. API accept rate: ``POST /v1/favorites`` against ``POST /bench/favorites-
   unpublished`` of the same backend process (closed loop, keep-alive connections);
2. store rate: the storing consumer against a bare aiokafka consume loop, both
   reading the same backlog;
3. bare produce -> consume round trip at the latency rate;
4. end-to-end rate: the API driven flat out with the consumer storing, for the
   sustained window, with the lag sampled;
5. end-to-end latency at the latency rate: request sent -> event applied;
6. the dashboard (see :mod:`recipe_pipeline.bench.dashboard`).

Each phase has a topic (and database) of its own. Every process and client it
starts is owned by one :class:`contextlib.AsyncExitStack`, so they are stopped
when the run ends, fails or is cancelled (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from recipe_pipeline.bench import http_load
from recipe_pipeline.bench.http_load import (
    KeepAliveConnection,
    LoadError,
    LoadResult,
    Request,
)
from recipe_pipeline.bench.kafka_baselines import (
    BATCH_RECORDS,
    BaselineError,
    bare_consume_rate,
    bare_round_trip,
    produce_backlog,
)
from recipe_pipeline.bench.report import Figure, Goal, percentile

logger = logging.getLogger(__name__)

#: Seconds a child process gets to write its ready file.
CHILD_START_TIMEOUT_S = 90.0
#: Seconds a child process gets to stop after SIGTERM.
CHILD_STOP_TIMEOUT_S = 20.0
#: Longest wait for the consumer to catch up after a load phase.
DRAIN_TIMEOUT_S = 120.0
#: How often the lag is sampled while a phase runs.
LAG_SAMPLE_S = 0.25
#: How often the committed offsets are read while the store phase runs.
STORE_POLL_S = 0.05
#: Records the consumer may trail by at the end of the sustained window and still
#: count as keeping up: two of its batches, or two seconds of input if more.
LAG_SLACK_RECORDS = 4000
LAG_SLACK_SECONDS = 2.0
#: Users the generated requests are spread over.
BENCH_USERS = 5000


class BenchError(RuntimeError):
    """The benchmark could not run; the message says which step failed and why."""


@dataclass(frozen=True)
class BenchConfig:
    """How long and how hard each phase runs.

    Attributes:
        mode: ``quick`` or ``full`` (goes in the report).
        work_dir: where databases, child logs and the broker's data go.
        api_seconds: each endpoint's measuring time in the API phase.
        store_events: the backlog both consumers read in the store phase.
        e2e_seconds: the sustained end-to-end window.
        latency_seconds: how long the latency phases send.
        latency_rate: events per second in the latency phases.
        connections: keep-alive connections of the load (for the paced load, the
            bound on requests in flight).
        dashboard_seconds: how long the dashboard is fed.
        dashboard_rate: messages per second fed to the dashboard.
        warmup_seconds: unmeasured load before each measured API run.
    """

    mode: str
    work_dir: Path
    api_seconds: float
    store_events: int
    e2e_seconds: float
    latency_seconds: float
    latency_rate: float = 500.0
    connections: int = 32
    dashboard_seconds: float = 10.0
    dashboard_rate: float = 2000.0
    warmup_seconds: float = 1.0


def preset(mode: str, work_dir: Path) -> BenchConfig:
    """The ``quick`` (under a minute) or ``full`` configuration."""
    if mode == "quick":
        return BenchConfig(
            mode="quick",
            work_dir=work_dir,
            api_seconds=4,
            store_events=20_000,
            e2e_seconds=6,
            latency_seconds=4,
            dashboard_seconds=4,
        )
    return BenchConfig(
        mode="full",
        work_dir=work_dir,
        api_seconds=15,
        store_events=150_000,
        e2e_seconds=30,
        latency_seconds=20,
        dashboard_seconds=15,
    )


def scaled(
    config: BenchConfig, seconds: float | None, events: int | None
) -> BenchConfig:
    """``config`` with every timed phase set to ``seconds`` and the backlog to
    ``events`` (either left as it is when ``None``)."""
    if seconds is not None:
        config = replace(
            config,
            api_seconds=seconds,
            e2e_seconds=seconds,
            latency_seconds=seconds,
            dashboard_seconds=seconds,
            warmup_seconds=min(config.warmup_seconds, seconds / 2),
        )
    if events is not None:
        config = replace(config, store_events=events)
    return config


class Progress:
    """Progress lines on stderr, each with the seconds since the run began."""

    def __init__(self, write: Callable[[str], object] = sys.stderr.write) -> None:
        self._write = write
        self._started = time.monotonic()

    def __call__(self, text: str) -> None:
        """Show one line."""
        self._write(f"[bench {time.monotonic() - self._started:6.1f}s] {text}\n")

    def load_tick(self, what: str) -> Callable[[LoadResult, float], None]:
        """A load run's ``on_tick``: a line every two seconds with the rate so far."""

        def tick(result: LoadResult, elapsed: float) -> None:
            if int(elapsed) % 2 == 0:
                rate = result.accepted / elapsed if elapsed else 0.0
                self(
                    f"  {what}: {elapsed:4.0f} s, {result.accepted:,} accepted"
                    f" ({rate:,.0f}/s)"
                )

        return tick


@dataclass
class Run:
    """What the phases share: the broker, the token, the children's environment."""

    config: BenchConfig
    bootstrap: str
    run_id: str
    token: str
    progress: Progress
    exits: AsyncExitStack
    #: the end-to-end phase's backend, once it runs
    backend_url: str | None = None

    def topic(self, phase: str) -> str:
        """The topic of one phase (unique to this run)."""
        return f"bench-{phase}-{self.run_id}"

    def database_url(self, phase: str) -> str:
        """The SQLite database of one phase."""
        return f"sqlite:///{(self.config.work_dir / f'{phase}.db').resolve()}"

    def child_env(self, phase: str) -> dict[str, str]:
        """The environment of a backend or consumer child of one phase."""
        from pipeline_core.stack.process import environment_for

        return environment_for(
            os.environ,
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            FAVORITES_TOPIC=self.topic(phase),
            CONSUMER_GROUP=f"bench-store-{phase}-{self.run_id}",
            DATABASE_URL=self.database_url(phase),
            API_TOKEN=self.token,
            FAVORITES_TOPIC_PARTITIONS="3",
        )

    async def start_child(self, name: str, argv: list[str], phase: str) -> Any:
        """Start one child and have the run stop it at the end.

        Returns:
            The running :class:`~pipeline_core.stack.process.ComponentProcess`.
        """
        from pipeline_core.stack.process import ComponentError, ComponentProcess

        child = ComponentProcess(
            f"{name}-{phase}",
            argv,
            env=self.child_env(phase),
            run_dir=self.config.work_dir / "run",
        )
        self.exits.push_async_callback(child.stop, CHILD_STOP_TIMEOUT_S)
        try:
            await child.start(CHILD_START_TIMEOUT_S)
        except ComponentError as exc:
            raise BenchError(f"the {name} for the {phase} phase: {exc}") from exc
        return child


async def run_benchmark(
    config: BenchConfig,
    *,
    bootstrap: str | None,
    progress: Progress,
    measure_dashboard: bool = True,
    only: str | None = None,
) -> tuple[list[Figure], dict[str, Any]]:
    """Run every phase; return the figures and the machine they ran on.

    Args:
        config: how long and how hard.
        bootstrap: an existing Kafka; ``None`` starts the embedded broker.
        progress: where progress lines go.
        measure_dashboard: also measure the dashboard.
        only: ``"dashboard"`` runs the dashboard phase alone; ``None`` runs all.

    Raises:
        BenchError: a step failed; what was started is stopped again.
    """
    config.work_dir.mkdir(parents=True, exist_ok=True)
    (config.work_dir / "run").mkdir(exist_ok=True)
    async with AsyncExitStack() as exits:
        bootstrap, kafka_version = await _broker(exits, bootstrap, config, progress)
        run = Run(
            config=config,
            bootstrap=bootstrap,
            run_id=uuid.uuid4().hex[:8],
            token=secrets.token_urlsafe(24),
            progress=progress,
            exits=exits,
        )
        figures: list[Figure] = []
        if only is None:
            figures.append(await _phase(run, "API accept rate", _api_phase))
            store = await _phase(run, "store rate", _store_phase)
            figures.append(store)
            rtt = await _bare_latency(run)
            e2e_figures = await _pipeline_phases(run, figures[0], store, rtt)
            figures.extend(e2e_figures)
        if measure_dashboard:
            from recipe_pipeline.bench.dashboard import measure_dashboard as dash

            progress("dashboard: key-press-to-update and memory")
            figures.extend(await dash(run))
        progress("stopping what the benchmark started")
    machine = await asyncio.to_thread(machine_facts, kafka_version)
    return figures, machine


async def _broker(
    exits: AsyncExitStack,
    bootstrap: str | None,
    config: BenchConfig,
    progress: Progress,
) -> tuple[str, str]:
    from pipeline_core.broker.jars import load_lock

    version = load_lock().kafka_version
    if bootstrap is not None:
        progress(f"using Kafka at {bootstrap}")
        return bootstrap, f"external (client jars lock: {version})"
    from pipeline_core.broker.embedded import BrokerError, EmbeddedBroker
    from pipeline_core.broker.jars import KafkaJarsError

    progress(f"starting the embedded Kafka {version} broker")
    broker = EmbeddedBroker(config.work_dir / "kafka", progress=progress)
    try:
        await exits.enter_async_context(broker)
    except (BrokerError, KafkaJarsError) as exc:
        raise BenchError(f"the embedded broker did not start: {exc}") from exc
    progress(f"broker answering at {broker.bootstrap_servers}")
    return broker.bootstrap_servers, version


async def _phase(run: Run, name: str, body: Callable[[Run], Any]) -> Figure:
    run.progress(f"{name}: starting")
    figure: Figure = await body(run)
    run.progress(f"{name}: done")
    return figure


# -- API ------------------------------------------------------------------------


def _bodies(recipe_ids: list[str], count: int = 4096) -> list[bytes]:
    rng = random.Random(8)  # noqa: S311 - load shape, not security
    return [
        json.dumps(
            {
                "user_id": str(200_000_000_000 + rng.randrange(BENCH_USERS)),
                "user_name": "bench",
                "recipe_id": rng.choice(recipe_ids),
                "source": "api",
            }
        ).encode()
        for _ in range(count)
    ]


def _request_maker(path: str, bodies: list[bytes]) -> Callable[[], Request]:
    counter = iter(range(1 << 62))

    def make() -> Request:
        return Request(path, bodies[next(counter) % len(bodies)])

    return make


async def _recipe_ids(connection: KeepAliveConnection) -> list[str]:
    status, body = await connection.send("GET", Request("/v1/recipes?limit=500", b""))
    if status != 200:
        raise BenchError(f"GET /v1/recipes answered {status}; is the catalog loaded?")
    return [str(recipe["id"]) for recipe in json.loads(body)["recipes"]]


async def _backend_pool(
    run: Run, backend: Any, size: int
) -> tuple[list[KeepAliveConnection], list[str]]:
    url = str(backend.ready["backend_url"])
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        pool = await http_load.open_pool(host, int(port), run.token, size)
    except LoadError as exc:
        raise BenchError(f"the load generator could not connect: {exc}") from exc
    run.exits.push_async_callback(http_load.close_pool, pool)
    return pool, await _recipe_ids(pool[0])


class _CpuMeter:
    """CPU use of this process and a child between :meth:`start` and :meth:`stop`."""

    def __init__(self, child_pid: int | None) -> None:
        import psutil

        self._own = psutil.Process()
        self._child = psutil.Process(child_pid) if child_pid else None

    def start(self) -> None:
        self._own.cpu_percent()
        if self._child is not None:
            self._child.cpu_percent()

    def stop(self) -> str:
        own = self._own.cpu_percent()
        text = f"load generator {own:.0f}% CPU"
        if self._child is not None:
            text += f", backend {self._child.cpu_percent():.0f}% CPU"
        return text


async def _closed_run(
    run: Run,
    pool: list[KeepAliveConnection],
    path: str,
    bodies: list[bytes],
    seconds: float,
    child_pid: int | None,
) -> tuple[LoadResult, str]:
    make = _request_maker(path, bodies)
    if run.config.warmup_seconds > 0:
        await http_load.closed_loop(pool, make, run.config.warmup_seconds)
    meter = _CpuMeter(child_pid)
    meter.start()
    result = await http_load.closed_loop(
        pool, make, seconds, on_tick=run.progress.load_tick(f"POST {path}")
    )
    return result, meter.stop()


async def _api_phase(run: Run) -> Figure:
    argv = [sys.executable, "-m", "recipe_pipeline.bench.api_server", "--port", "0"]
    backend = await run.start_child("backend", argv, "api")
    pool, recipe_ids = await _backend_pool(run, backend, run.config.connections)
    bodies = _bodies(recipe_ids)
    seconds = run.config.api_seconds

    bare, bare_cpu = await _closed_run(
        run, pool, "/bench/favorites-unpublished", bodies, seconds, backend.pid
    )
    real, real_cpu = await _closed_run(
        run, pool, "/v1/favorites", bodies, seconds, backend.pid
    )
    await backend.stop(CHILD_STOP_TIMEOUT_S)

    error = None
    if real.accepted == 0 or bare.accepted == 0:
        error = (
            "no request was accepted: real "
            f"{real.failures_text() or 'none'}; bare {bare.failures_text() or 'none'}"
        )
    note = (
        f"{run.config.connections} keep-alive connections, {seconds:g} s each after"
        f" {run.config.warmup_seconds:g} s warm-up; real: {real_cpu}; bare: {bare_cpu}"
    )
    for label, result in (("real", real), ("bare", bare)):
        if result.failures_text():
            note += f"; {label} non-202: {result.failures_text()}"
    return Figure(
        key="api_accept_rate",
        name="API accept rate, POST /v1/favorites",
        unit="/s",
        value=real.rate if real.accepted else None,
        baseline=bare.rate if bare.accepted else None,
        baseline_name="POST /bench/favorites-unpublished, same backend process",
        goal=Goal(min_ratio=0.6),
        note=note,
        error=error,
    )


# -- store ----------------------------------------------------------------------


async def _committed(reader: Any, group: str, topic: str) -> tuple[int, int]:
    """``(committed, lag)`` totals of ``group`` on ``topic`` (0 before it joined)."""
    from pipeline_core.lag import GroupNotFound

    try:
        snapshot = await reader.read(group, topic)
    except GroupNotFound:
        return 0, -1
    committed = sum(part.committed or 0 for part in snapshot.partitions)
    return committed, snapshot.total


async def _store_phase(run: Run) -> Figure:
    from pipeline_core.lag import LagReader
    from pipeline_core.stack.process import component_argv
    from pipeline_core.stack.topics import ensure_topics

    topic, count = run.topic("store"), run.config.store_events
    await ensure_topics(
        run.bootstrap, [topic, f"{topic}.dlq"], partitions=3, timeout=30
    )
    run.progress(f"  producing a backlog of {count:,} events on {topic}")
    await produce_backlog(
        run.bootstrap,
        topic,
        count,
        timeout=max(60.0, count / 1000),
        on_progress=lambda n: (
            run.progress(f"  backlog: {n:,} of {count:,}") if n % 50_000 == 0 else None
        ),
    )

    run.progress("  bare aiokafka consume loop")
    try:
        bare = await bare_consume_rate(
            run.bootstrap, topic, count, timeout=max(60.0, count / 500)
        )
    except BaselineError as exc:
        raise BenchError(f"store baseline: {exc}") from exc
    run.progress(f"  bare loop: {bare.rate:,.0f} records/s")

    run.progress("  storing consumer on the same backlog")
    group = run.child_env("store")["CONSUMER_GROUP"]
    consumer = await run.start_child(
        "consumer", component_argv("consumer", "--metrics-port", "0"), "store"
    )
    ready_at = time.perf_counter()
    deadline = time.monotonic() + max(DRAIN_TIMEOUT_S, count / 200)
    polls = 0
    async with LagReader(run.bootstrap) as reader:
        while True:
            committed, _lag = await _committed(reader, group, topic)
            if committed >= count:
                done_at = time.perf_counter()
                break
            if time.monotonic() > deadline or consumer.check() != "running":
                raise BenchError(
                    f"the storing consumer committed {committed:,} of {count:,} events"
                    f" and then stopped progressing; see {consumer.log_path}"
                )
            polls += 1
            if polls % 20 == 0:
                run.progress(f"  stored {committed:,} of {count:,}")
            await asyncio.sleep(STORE_POLL_S)
    await consumer.stop(CHILD_STOP_TIMEOUT_S)

    seconds = done_at - ready_at
    return Figure(
        key="store_rate",
        name="store rate, events applied and committed",
        unit="/s",
        value=count / seconds,
        baseline=bare.rate,
        baseline_name="bare aiokafka consume loop, same backlog",
        goal=Goal(min_ratio=0.5, min_value=10_000),
        note=(
            f"backlog of {count:,} events on 3 partitions, batches of"
            f" {BATCH_RECORDS:,}; clocks start once each reader has joined (the"
            " consumer's ready file) and stop at the last record read (bare) or the"
            f" last offset committed (consumer, polled every {STORE_POLL_S:g} s)"
        ),
    )


# -- latency baseline -----------------------------------------------------------


async def _bare_latency(run: Run) -> list[float]:
    from pipeline_core.stack.topics import ensure_topics

    rate, seconds = run.config.latency_rate, run.config.latency_seconds
    run.progress(f"bare produce -> consume round trip at {rate:g}/s for {seconds:g} s")
    topic = run.topic("rtt")
    await ensure_topics(run.bootstrap, [topic], partitions=3, timeout=30)
    try:
        latencies = await bare_round_trip(
            run.bootstrap,
            topic,
            rate=rate,
            seconds=seconds,
            on_progress=lambda n: run.progress(f"  round trip: {n:,} sent"),
        )
    except BaselineError as exc:
        raise BenchError(f"latency baseline: {exc}") from exc
    run.progress(
        f"  round trip p50 {percentile(latencies, 50):.1f} ms,"
        f" p99 {percentile(latencies, 99):.1f} ms"
    )
    return latencies


# -- end to end -----------------------------------------------------------------


async def _pipeline_phases(
    run: Run, api: Figure, store: Figure, rtt: list[float]
) -> list[Figure]:
    from pipeline_core.stack.process import component_argv

    run.progress("end to end: starting the backend and the consumer")
    backend = await run.start_child(
        "backend",
        component_argv("backend", "--host", "127.0.0.1", "--port", "0"),
        "e2e",
    )
    consumer = await run.start_child(
        "consumer", component_argv("consumer", "--metrics-port", "0"), "e2e"
    )
    run.backend_url = str(backend.ready["backend_url"])
    pool, recipe_ids = await _backend_pool(run, backend, run.config.connections)
    bodies = _bodies(recipe_ids)
    figures = [await _sustained(run, pool, bodies, api, store, consumer)]
    figures.extend(await _latency(run, pool, bodies, rtt, consumer))
    return figures


async def _sample_lag(
    reader: Any, group: str, topic: str, into: list[tuple[float, int, int]]
) -> None:
    while True:
        committed, lag = await _committed(reader, group, topic)
        into.append((time.perf_counter(), committed, lag))
        await asyncio.sleep(LAG_SAMPLE_S)


async def _drain(reader: Any, group: str, topic: str, consumer: Any) -> float:
    """Wait until ``group`` has no lag on ``topic``; return the seconds it took."""
    started = time.monotonic()
    while True:
        _committed_total, lag = await _committed(reader, group, topic)
        if lag == 0:
            return time.monotonic() - started
        if (
            time.monotonic() - started > DRAIN_TIMEOUT_S
            or consumer.check() != "running"
        ):
            raise BenchError(
                f"the consumer still trailed by {lag:,} events {DRAIN_TIMEOUT_S:g} s"
                f" after the load stopped; see {consumer.log_path}"
            )
        await asyncio.sleep(LAG_SAMPLE_S)


async def _sustained(
    run: Run,
    pool: list[KeepAliveConnection],
    bodies: list[bytes],
    api: Figure,
    store: Figure,
    consumer: Any,
) -> Figure:
    from pipeline_core.lag import LagReader

    topic, group = run.topic("e2e"), run.child_env("e2e")["CONSUMER_GROUP"]
    seconds = run.config.e2e_seconds
    run.progress(f"end-to-end rate: API flat out for {seconds:g} s, consumer storing")
    samples: list[tuple[float, int, int]] = []
    async with LagReader(run.bootstrap) as reader:
        start_committed, _ = await _committed(reader, group, topic)
        sampler = asyncio.create_task(_sample_lag(reader, group, topic, samples))
        try:
            result = await http_load.closed_loop(
                pool,
                _request_maker("/v1/favorites", bodies),
                seconds,
                on_tick=run.progress.load_tick("POST /v1/favorites (e2e)"),
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        end_committed, end_lag = await _committed(reader, group, topic)
        run.progress(f"  load stopped; lag {end_lag:,}; waiting for the consumer")
        drained = await _drain(reader, group, topic, consumer)

    stored_rate = (end_committed - start_committed) / result.seconds
    value = min(result.rate, stored_rate)
    baselines = [f.value for f in (api, store) if f.value is not None]
    max_lag = max((lag for _t, _c, lag in samples), default=end_lag)
    slack = max(LAG_SLACK_RECORDS, result.rate * LAG_SLACK_SECONDS)
    bounded = end_lag <= slack
    return Figure(
        key="e2e_rate",
        name=f"end-to-end rate, accepted -> stored, {seconds:g} s",
        unit="/s",
        value=value if result.accepted else None,
        baseline=min(baselines) if baselines else None,
        baseline_name="the lower of the API accept rate and the store rate above",
        goal=Goal(min_ratio=0.8, conditions={"lag bounded": bounded}),
        note=(
            f"accepted {result.rate:,.0f}/s, stored {stored_rate:,.0f}/s in the"
            f" window; lag at the end {end_lag:,} (bound {slack:,.0f}), max"
            f" {max_lag:,}; drained {drained:.1f} s after the load stopped"
            + (f"; non-202: {result.failures_text()}" if result.failures_text() else "")
        ),
        error=None
        if result.accepted
        else f"nothing accepted: {result.failures_text()}",
    )


async def _latency(
    run: Run,
    pool: list[KeepAliveConnection],
    bodies: list[bytes],
    rtt: list[float],
    consumer: Any,
) -> list[Figure]:
    from pipeline_core.lag import LagReader

    rate, seconds = run.config.latency_rate, run.config.latency_seconds
    topic, group = run.topic("e2e"), run.child_env("e2e")["CONSUMER_GROUP"]
    run.progress(f"end-to-end latency: {rate:g} requests/s for {seconds:g} s")
    sent: dict[str, float] = {}
    counter = iter(range(1 << 62))

    def make() -> Request:
        index = next(counter)
        trace_id = f"bench-{run.run_id}-{index:08d}"
        return Request(
            "/v1/favorites", bodies[index % len(bodies)], (("X-Trace-Id", trace_id),)
        )

    def on_sent(request: Request, wall: float) -> None:
        sent[request.headers[0][1]] = wall

    result = await http_load.paced(
        pool,
        make,
        rate,
        seconds,
        on_sent=on_sent,
        on_tick=run.progress.load_tick("POST /v1/favorites (paced)"),
    )
    async with LagReader(run.bootstrap) as reader:
        await _drain(reader, group, topic, consumer)
    applied = await asyncio.to_thread(
        _applied_times, run.database_url("e2e"), list(sent)
    )
    latencies = [
        (applied[trace] - wall) * 1000
        for trace, wall in sent.items()
        if trace in applied
    ]
    kept = result.accepted / result.seconds if result.seconds else 0.0
    note = (
        f"{len(latencies):,} events stored of {len(sent):,} sent; rate kept"
        f" {kept:,.0f}/s; request sent -> applied_at of its event (consumer's"
        " clock, same machine); HTTP answer p50"
        f" {_p(result.latencies_ms, 50)}, p99 {_p(result.latencies_ms, 99)}"
    )
    error = None if latencies else "no event of the latency run was found stored"
    figures = []
    for q, goal in ((50, Goal()), (99, Goal(max_ratio=3.0))):
        figures.append(
            Figure(
                key=f"e2e_latency_p{q}",
                name=f"end-to-end latency p{q} at {rate:g}/s",
                unit="ms",
                value=percentile(latencies, q) if latencies else None,
                baseline=percentile(rtt, q) if rtt else None,
                baseline_name=f"bare aiokafka produce -> consume p{q}, {rate:g}/s",
                goal=goal,
                note=note,
                error=error,
            )
        )
    return figures


def _p(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f} ms" if values else "-"


def _applied_times(database_url: str, trace_ids: list[str]) -> dict[str, float]:
    """``trace_id -> applied_at`` (epoch seconds) of the applied events."""
    from sqlmodel import Session, col, select

    from pipeline_core.storage import AppliedEvent, make_engine

    engine = make_engine(database_url)
    found: dict[str, float] = {}
    try:
        with Session(engine) as session:
            for start in range(0, len(trace_ids), 500):
                chunk = trace_ids[start : start + 500]
                rows = session.exec(
                    select(AppliedEvent.trace_id, AppliedEvent.applied_at).where(
                        col(AppliedEvent.trace_id).in_(chunk)
                    )
                )
                for trace_id, applied_at in rows:
                    found[trace_id] = _epoch(applied_at)
    finally:
        engine.dispose()
    return found


def _epoch(moment: datetime) -> float:
    from datetime import UTC

    if moment.tzinfo is None:  # SQLite gives back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- machine --------------------------------------------------------------------


def machine_facts(kafka_version: str) -> dict[str, Any]:
    """Cores, memory, and the Python, Java and Kafka versions of this machine."""
    import platform

    import psutil

    from pipeline_core.broker.embedded import JavaNotFoundError, find_java

    try:
        java_path, java_major = find_java()
        java = f"{java_major} ({java_path})"
    except JavaNotFoundError:
        java = "not found"
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "kafka": kafka_version,
    }
