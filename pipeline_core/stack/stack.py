"""The whole pipeline as supervised parts: broker, topics, backend, consumer.

:class:`Stack` starts them in that order, each step bounded, and stops them in
reverse order, also when a step fails or the start is cancelled (Ctrl-C). One data
dir and one SQLite database serve one running stack: before it touches anything, a
stack takes an exclusive lock on ``<data_dir>/stack.lock`` and on
``<sqlite file>.stack-lock``, holds them until it stopped, and a second stack is
refused at once (:class:`StackError`). The broker
is the embedded one, run in this process, unless :attr:`StackConfig.bootstrap` names
an existing cluster. The backend and the consumer are child processes
(:class:`~pipeline_core.stack.process.ComponentProcess`). The bot is not part of the
stack: the dashboard runs it in its own process.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import SecretStr

from pipeline_core.settings import Settings
from pipeline_core.stack.lock import LockHeld, RunLock
from pipeline_core.stack.process import (
    ComponentError,
    ComponentProcess,
    component_argv,
    environment_for,
)
from pipeline_core.stack.topics import ensure_topics

if TYPE_CHECKING:
    from pipeline_core.broker.embedded import EmbeddedBroker

logger = logging.getLogger(__name__)

#: Called with a short description of each start-up step as it begins; the broker's
#: steps (jar fetch, storage format) call it from a worker thread.
ProgressCallback = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not start; the message names the step and what to do."""


@dataclass(frozen=True)
class StackConfig:
    """What a stack runs with.

    Attributes:
        data_dir: holds the broker's data (``kafka/``), the children's logs and
            ready files (``run/``), the default SQLite database, and the lock
            (``stack.lock``) that keeps it to one running stack.
        topic: the interactions topic; ``<topic>.dlq`` holds the dead letters.
        group: the storing consumer's group.
        database_url: where favourites are stored; ``None`` means
            ``sqlite:///<data_dir>/favorites.db``.
        api_token: the backend's bearer token; ``None`` makes a random one.
        bootstrap: an existing Kafka to use; ``None`` starts the embedded broker.
        partitions: partitions of the topics the stack creates.
        broker_timeout: seconds for the broker to start (a first jar fetch included).
        topic_timeout: seconds for the topics to be created or checked.
        component_timeout: seconds for each child to write its ready file.
        stop_timeout: seconds a child gets after SIGTERM before SIGKILL.
        base_env: the environment the children inherit (default: this process's).
    """

    data_dir: Path
    topic: str = "user-favorites"
    group: str = "favorites-store"
    database_url: str | None = None
    api_token: SecretStr | None = None
    bootstrap: str | None = None
    partitions: int = 3
    broker_timeout: float = 600.0
    topic_timeout: float = 30.0
    component_timeout: float = 60.0
    stop_timeout: float = 10.0
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_settings(cls, settings: Settings, data_dir: Path) -> StackConfig:
        """The configuration from ``settings``, with its data in ``data_dir``."""
        return cls(
            data_dir=data_dir,
            topic=settings.favorites_topic,
            group=settings.consumer_group,
            database_url=settings.database_url,
            api_token=settings.api_token,
            bootstrap=settings.kafka_bootstrap_servers,
            partitions=settings.favorites_topic_partitions,
        )

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic that goes with :attr:`topic`."""
        return f"{self.topic}.dlq"


def absolute_sqlite_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute (other URLs unchanged).

    The children share the stack's working directory, but tools that read the ready
    file may not; an absolute path means the same file for all of them.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    path, _, query = url.removeprefix(prefix).partition("?")
    if path in ("", ":memory:"):
        return url
    absolute = f"{prefix}{Path(path).resolve()}"
    return f"{absolute}?{query}" if query else absolute


def sqlite_file(url: str) -> Path | None:
    """The database file an absolute SQLite URL names (``None`` for other URLs)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix + "/"):
        return None
    path = url.removeprefix(prefix).partition("?")[0]
    return Path(path) if path else None


def data_dir_lock(data_dir: Path) -> RunLock:
    """The lock that keeps a second stack off ``data_dir``."""
    return RunLock(data_dir / "stack.lock")


def database_lock(database_url: str) -> RunLock | None:
    """The lock that keeps a second stack off a SQLite file (``None`` otherwise)."""
    path = sqlite_file(database_url)
    return None if path is None else RunLock(path.with_name(path.name + ".stack-lock"))


def check_not_in_use(config: StackConfig) -> None:
    """Refuse at once when another running stack holds this config's files.

    A probe for commands that should fail before they open a screen or a log: the
    locks are taken and let go again; :meth:`Stack.start` takes them for good.

    Raises:
        StackError: the data dir or the SQLite database is in use.
    """
    for lock in Stack(config).take_locks():
        lock.release()


def _holder(exc: LockHeld) -> str:
    return f"pid {exc.holder_pid}" if exc.holder_pid else "pid unknown"


class Stack:
    """Broker, topics, backend and consumer, started and stopped as one.

    Use it as ``async with Stack(config) as stack:``; the addresses are then in
    :attr:`kafka_bootstrap`, :attr:`backend_url` and :attr:`database_url`, and the
    children in :attr:`components`. Create and use it on the event loop's thread.

    Args:
        config: what to run.
        on_progress: called with each start-up step's description.
        on_component_state: called with a component after each of its state changes.
    """

    def __init__(
        self,
        config: StackConfig,
        *,
        on_progress: ProgressCallback | None = None,
        on_component_state: Callable[[ComponentProcess], None] | None = None,
    ) -> None:
        self.config = config
        #: the data dir as an absolute path (the paths the stack hands out are too)
        self.data_dir = config.data_dir.expanduser().resolve()
        self.run_dir = self.data_dir / "run"
        self.database_url = absolute_sqlite_url(
            config.database_url or f"sqlite:///{self.data_dir / 'favorites.db'}"
        )
        self._api_token = config.api_token or SecretStr(secrets.token_urlsafe(32))
        self._on_progress = on_progress
        self._on_component_state = on_component_state
        self._exit_stack: AsyncExitStack | None = None
        self._kafka_bootstrap: str | None = None
        #: the embedded broker while it runs (``None`` with an existing Kafka)
        self.broker: EmbeddedBroker | None = None
        self.components: dict[str, ComponentProcess] = {}

    @property
    def api_token(self) -> SecretStr:
        """The bearer token the backend requires on writes (kept secret in reprs)."""
        return self._api_token

    @property
    def kafka_bootstrap(self) -> str:
        """The bootstrap servers of the stack's Kafka."""
        if self._kafka_bootstrap is None:
            raise StackError("the stack has no broker yet; start it first")
        return self._kafka_bootstrap

    @property
    def backend_url(self) -> str:
        """The backend's base URL, from its ready file."""
        backend = self.components.get("backend")
        if backend is None or "backend_url" not in backend.ready:
            raise StackError("the backend is not running yet; start the stack first")
        return str(backend.ready["backend_url"]).rstrip("/")

    @property
    def backend(self) -> ComponentProcess:
        """The backend's child process."""
        return self.components["backend"]

    @property
    def consumer(self) -> ComponentProcess:
        """The storing consumer's child process."""
        return self.components["consumer"]

    def addresses(self) -> dict[str, str]:
        """The ready-file keys of ``recipe-pipeline up`` (no secrets)."""
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "backend_url": self.backend_url,
            "database_url": self.database_url,
        }

    def child_environment(self) -> dict[str, str]:
        """The environment the backend and consumer run with (holds the token)."""
        return environment_for(
            self.config.base_env,
            KAFKA_BOOTSTRAP_SERVERS=self.kafka_bootstrap,
            FAVORITES_TOPIC=self.config.topic,
            CONSUMER_GROUP=self.config.group,
            DATABASE_URL=self.database_url,
            API_TOKEN=self._api_token.get_secret_value(),
            BACKEND_URL=self.backend_url if "backend" in self.components else None,
        )

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start broker, topics, backend and consumer, in order, each bounded.

        Raises:
            StackError: a step failed; what had started is stopped again.
        """
        if self._exit_stack is not None:
            raise StackError("the stack is already started; did you start it twice?")
        self._exit_stack = AsyncExitStack()
        try:
            await self._start_steps(self._exit_stack)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything that was started, in reverse order (safe to call twice)."""
        exit_stack, self._exit_stack = self._exit_stack, None
        if exit_stack is not None:
            await exit_stack.aclose()

    @property
    def api_token_file(self) -> Path:
        """A file only this user can read, holding :attr:`api_token` while it runs.

        Tools that attach to the stack (``dashboard --attach``) read the token there;
        it never goes into a ready file or a log.
        """
        return self.run_dir / "api-token"

    def take_locks(self) -> list[RunLock]:
        """Lock the data dir, then the SQLite database file; all or nothing.

        Returns:
            The locks taken, to be released in reverse order when the stack stops.

        Raises:
            StackError: another running stack holds one of them; nothing is held
                and nothing in the data dir was changed.
        """
        taken: list[RunLock] = []
        try:
            lock = data_dir_lock(self.data_dir)
            try:
                lock.acquire()
            except LockHeld as exc:
                raise StackError(
                    f"data dir {self.data_dir} is in use by another running stack"
                    f" ({_holder(exc)}); pass another --data-dir"
                ) from None
            taken.append(lock)

            lock_of_database = database_lock(self.database_url)
            if lock_of_database is not None:
                try:
                    lock_of_database.acquire()
                except LockHeld as exc:
                    raise StackError(
                        f"database {sqlite_file(self.database_url)} is in use by"
                        f" another running stack ({_holder(exc)}); set DATABASE_URL"
                        " to a database of this stack's own"
                    ) from None
                taken.append(lock_of_database)
        except BaseException:
            for held in reversed(taken):
                held.release()
            raise
        return taken

    async def _start_steps(self, exit_stack: AsyncExitStack) -> None:
        for lock in self.take_locks():
            exit_stack.callback(lock.release)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_token_file()
        exit_stack.callback(self.api_token_file.unlink, missing_ok=True)
        await self._start_broker(exit_stack)

        self._progress(f"creating topics {self.config.topic} and its .dlq")
        try:
            await ensure_topics(
                self.kafka_bootstrap,
                [self.config.topic, self.config.dead_letter_topic],
                partitions=self.config.partitions,
                timeout=self.config.topic_timeout,
            )
        except RuntimeError as exc:
            raise StackError(f"topics: {exc}") from exc

        backend_args = ("--host", "127.0.0.1", "--port", "0")
        await self._start_component(exit_stack, "backend", backend_args)
        await self._start_component(exit_stack, "consumer", ("--metrics-port", "0"))
        self._progress("stack running")

    async def _start_broker(self, exit_stack: AsyncExitStack) -> None:
        if self.config.bootstrap is not None:
            self._progress(f"using Kafka at {self.config.bootstrap}")
            self._kafka_bootstrap = self.config.bootstrap
            return

        self._progress("starting the embedded Kafka broker (first run fetches jars)")
        from pipeline_core.broker.embedded import EmbeddedBroker

        broker = EmbeddedBroker(
            self.data_dir / "kafka",
            startup_timeout=self.config.broker_timeout,
            progress=self._progress,
        )
        try:
            await exit_stack.enter_async_context(broker)
        except Exception as exc:
            raise StackError(f"embedded broker: {exc}") from exc
        self.broker = broker
        exit_stack.callback(self._forget_broker)
        self._kafka_bootstrap = str(broker.bootstrap_servers)
        logger.info("embedded broker running at %s", self._kafka_bootstrap)

    async def _start_component(
        self, exit_stack: AsyncExitStack, name: str, args: tuple[str, ...]
    ) -> None:
        self._progress(f"starting the {name}")
        component = ComponentProcess(
            name,
            component_argv(name, *args),
            env=self.child_environment(),
            run_dir=self.run_dir,
            on_state=self._on_component_state,
        )
        self.components[name] = component

        async def stop_component(*_exc: object) -> None:
            await component.stop(self.config.stop_timeout)

        exit_stack.push_async_exit(stop_component)
        try:
            await component.start(self.config.component_timeout)
        except ComponentError as exc:
            raise StackError(str(exc)) from exc

    def _write_token_file(self) -> None:
        path = self.api_token_file
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(self._api_token.get_secret_value())

    def _forget_broker(self) -> None:
        self.broker = None
        self._kafka_bootstrap = None

    def _progress(self, step: str) -> None:
        logger.info("stack: %s", step)
        if self._on_progress is not None:
            self._on_progress(step)
