"""A real Apache Kafka broker run from its jars with the local Java, no Docker.

:class:`EmbeddedBroker` runs Kafka (the version pinned in ``kafka-jars.lock.json``)
in KRaft combined mode: one node that is both broker and controller, listening on
127.0.0.1 only, on free ports, with a data dir that is temporary unless one is given.
It is sized for a small machine (a 512 MiB heap by default).

Limits: one node, so every topic has a replication factor of 1; the broker lives as
long as the Python process that started it (on Linux the kernel ends it if that
process dies, so a crashed test run leaves no Java behind).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from pipeline_core.broker.jars import ensure_kafka_jars, load_lock

logger = logging.getLogger(__name__)

MIN_JAVA = 17
DEFAULT_HEAP_MB = 512
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
FORMAT_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 15


class BrokerError(RuntimeError):
    """The embedded broker could not start or stop; the message says why."""


class JavaNotFoundError(BrokerError):
    """No usable Java 17+ was found."""


def find_java() -> tuple[Path, int]:
    """Locate the Java runtime to run Kafka with and read its major version.

    ``JAVA_HOME/bin/java`` wins when ``JAVA_HOME`` is set; otherwise ``java`` on
    ``PATH``.

    Raises:
        JavaNotFoundError: no java, or one older than 17; the message says what to do.
    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        raise JavaNotFoundError(
            f"the embedded Kafka broker needs Java {MIN_JAVA} or newer, and no `java`"
            " was found on PATH or in JAVA_HOME; install a JDK (for example"
            " openjdk-17-jre-headless) or set KAFKA_BOOTSTRAP_SERVERS to use a"
            " running Kafka"
        )
    try:
        result = subprocess.run(
            [str(candidate), "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaNotFoundError(f"could not run {candidate} -version: {exc}") from None
    major = parse_java_major(result.stderr + result.stdout)
    if major is None or major < MIN_JAVA:
        raise JavaNotFoundError(
            f"{candidate} is Java {major or 'of unknown version'}; Kafka 4 needs Java"
            f" {MIN_JAVA} or newer: install one and put it first on PATH or in"
            " JAVA_HOME"
        )
    return candidate, major


def parse_java_major(version_output: str) -> int | None:
    """Read the major version from ``java -version`` output (``1.8`` -> 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_properties(
    *, node_id: int, port: int, controller_port: int, log_dir: Path, partitions: int
) -> str:
    """The ``server.properties`` of a single-node KRaft broker on 127.0.0.1."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@127.0.0.1:{controller_port}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.hours": "24",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def log4j2_properties(log_file: Path) -> str:
    """A log4j2 configuration that sends the broker's logs to ``log_file``."""
    return (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {log_file}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
        "logger.kafka.name = kafka\n"
        "logger.kafka.level = INFO\n"
        "logger.state.name = state.change.logger\n"
        "logger.state.level = WARN\n"
        "logger.request.name = kafka.request.logger\n"
        "logger.request.level = WARN\n"
    )


def _end_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child before exec: ask the kernel to SIGTERM it when we die (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedBroker:
    """A single-node Kafka broker, started and stopped by this process.

    Use it as an async context manager::

        async with EmbeddedBroker() as broker:
            print(broker.bootstrap_servers)

    ``stop()`` followed by ``start()`` restarts it on the same ports and data (what
    the broker-restart scenarios need); ``close()`` also deletes a temporary data dir.

    Args:
        data_dir: where the broker keeps its logs and metadata; a temporary folder
            (deleted on close) when ``None``. An existing, formatted dir is reused.
        port: the client port; 0 picks a free one.
        heap_mb: the JVM heap.
        startup_timeout: how long to wait for the broker to answer, in seconds.
        progress: called with short status lines while starting (jar fetch, format).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int = 0,
        heap_mb: int = DEFAULT_HEAP_MB,
        startup_timeout: float = STARTUP_TIMEOUT_S,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self._given_dir = data_dir
        self._data_dir: Path | None = None
        self._port = port
        self._controller_port = 0
        self._heap_mb = heap_mb
        self._startup_timeout = startup_timeout
        self._progress = progress or (lambda _line: None)
        self._process: subprocess.Popen[bytes] | None = None
        self._classpath: str | None = None
        self._java: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the running broker."""
        if self._process is None or self._process.poll() is not None:
            raise BrokerError("the embedded broker is not running; call start() first")
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        """The Java process id while the broker runs."""
        return self._process.pid if self._process else None

    @property
    def data_dir(self) -> Path:
        """The broker's data dir (after start)."""
        if self._data_dir is None:
            raise BrokerError("the embedded broker has no data dir before start()")
        return self._data_dir

    @property
    def log_file(self) -> Path:
        """The broker's own log file."""
        return self.data_dir / "logs" / "server.log"

    @property
    def running(self) -> bool:
        """Whether the Java process is alive."""
        return self._process is not None and self._process.poll() is None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> str:
        """Start the broker and wait until it answers a metadata request.

        Returns:
            The bootstrap address.

        Raises:
            BrokerError: Java is missing, the jars could not be had, or the broker
                did not answer in time (the message carries its last log lines).
        """
        if self.running:
            raise BrokerError("the embedded broker is already running (start twice?)")

        if self._port and self._controller_port == 0 and not _port_free(self._port):
            raise BrokerError(
                f"port {self._port} on 127.0.0.1 is already in use; choose another"
                " port, or 0 for a free one"
            )
        await asyncio.to_thread(self._prepare)
        fixed_ports = self._port != 0 and self._controller_port != 0
        attempts = 1 if fixed_ports or self._port != 0 else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if not fixed_ports:
                self._controller_port = free_port()
                self._port = self._port or free_port()
            await asyncio.to_thread(self._write_config)
            self._spawn()
            try:
                await self._wait_until_ready()
            except BrokerError as exc:
                await self.stop()
                if attempt < attempts and "Address already in use" in str(exc):
                    logger.warning("broker port taken, retrying on other ports")
                    self._port = 0
                    continue
                raise
            break
        logger.info(
            "embedded kafka ready at %s (pid %s, data %s)",
            self.bootstrap_servers,
            self.pid,
            self._data_dir,
        )
        return self.bootstrap_servers

    def _prepare(self) -> None:
        """Blocking set-up: Java, jars, data dir, format (runs in a worker thread)."""
        if self._java is None:
            self._java, _major = find_java()
        if self._classpath is None:
            version = load_lock().kafka_version
            self._progress(f"checking the Apache Kafka {version} jars")
            jars = ensure_kafka_jars(
                progress=lambda done, total, name: self._progress(
                    f"kafka jars {done}/{total} {name}"
                )
            )
            self._classpath = os.pathsep.join(str(jar) for jar in jars)
        if self._data_dir is None:
            if self._given_dir is not None:
                self._data_dir = self._given_dir.expanduser().resolve()
                self._data_dir.mkdir(parents=True, exist_ok=True)
            else:
                self._data_dir = Path(tempfile.mkdtemp(prefix="recipe-kafka-"))
        (self._data_dir / "logs").mkdir(exist_ok=True)

    def _write_config(self) -> None:
        data = self.data_dir
        (data / "server.properties").write_text(
            server_properties(
                node_id=1,
                port=self._port,
                controller_port=self._controller_port,
                log_dir=data / "kraft",
                partitions=3,
            )
        )
        (data / "log4j2.properties").write_text(log4j2_properties(self.log_file))
        if not (data / "kraft" / "meta.properties").is_file():
            self._format()

    def _format(self) -> None:
        self._progress("formatting the broker's storage")
        cluster_id = _kafka_cluster_id()
        command = [
            *self._java_command(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.data_dir / "server.properties"),
        ]
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=FORMAT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"formatting the Kafka storage in {self.data_dir} took longer than"
                f" {FORMAT_TIMEOUT_S:.0f}s"
            ) from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise BrokerError(
                f"formatting the Kafka storage in {self.data_dir} failed: "
                + " | ".join(detail)
            )

    def _java_command(self) -> list[str]:
        if self._java is None or self._classpath is None:
            raise BrokerError("the embedded broker was not prepared (internal error)")
        return [
            str(self._java),
            f"-Xmx{self._heap_mb}m",
            f"-Xms{min(self._heap_mb, 256)}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            self._classpath,
        ]

    def _spawn(self) -> None:
        # Spawned from the event loop's thread: the parent-death signal follows the
        # thread that forked, so a worker thread would take the broker with it.
        console = (self.data_dir / "logs" / "console.log").open("ab")
        with console:
            self._process = subprocess.Popen(
                [
                    *self._java_command(),
                    "kafka.Kafka",
                    str(self.data_dir / "server.properties"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_end_with_parent,
            )

    async def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        address = f"127.0.0.1:{self._port}"
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise BrokerError(
                    "the Kafka broker exited during start-up: " + self._log_tail()
                )
            if await _port_open(self._port):
                client = AIOKafkaClient(
                    bootstrap_servers=address, request_timeout_ms=5000
                )
                try:
                    await asyncio.wait_for(client.bootstrap(), timeout=5)
                    if client.cluster.brokers():
                        return
                except (KafkaError, TimeoutError, OSError) as exc:
                    last_error = repr(exc)
                finally:
                    await client.close()
            await asyncio.sleep(0.2)
        raise BrokerError(
            f"the Kafka broker did not answer on {address} within"
            f" {self._startup_timeout:.0f}s ({last_error}): " + self._log_tail()
        )

    def _log_tail(self) -> str:
        lines: list[str] = []
        for name in ("server.log", "console.log"):
            path = self.data_dir / "logs" / name
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()
                lines.extend(line for line in text if line.strip())
        interesting = [
            line for line in lines if "ERROR" in line or "Exception" in line
        ] or lines
        tail = " | ".join(interesting[-_LOG_TAIL_LINES:])
        return f"{tail or 'no log output'} (logs in {self.data_dir / 'logs'})"

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "kafka (pid %s) ignored SIGTERM for %ss; killing it",
                process.pid,
                timeout,
            )
            process.kill()
            await asyncio.to_thread(process.wait, 10)
        logger.info("embedded kafka stopped (pid %s)", process.pid)

    async def kill(self) -> None:
        """End the broker at once with SIGKILL (crash scenarios)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    async def close(self) -> None:
        """Stop the broker and delete its data dir if it was a temporary one."""
        await self.stop()
        if self._given_dir is None and self._data_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self._data_dir, True)
            self._data_dir = None


def _kafka_cluster_id() -> str:
    """A cluster id as Kafka makes them: a UUID in URL-safe base64, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii")
        # A leading '-' would read as an option to StorageTool's argument parser.
        if not cluster_id.startswith("-"):
            return cluster_id.rstrip("=")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError, TimeoutError):
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout=1
        )
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
