"""The benchmark's HTTP load generator: plain HTTP/1.1 over keep-alive connections.

A general HTTP client spends more CPU per request than a small API does, and on a
two-core machine the generator would then be the bottleneck being measured. This one
writes each request as prepared bytes on an open connection and reads back only the
status line, the headers and ``Content-Length`` bytes of body: it speaks just enough
HTTP/1.1 for uvicorn's answers to ``POST`` requests, one request at a time per
connection (no pipelining). Many connections run side by side on one event loop.

Two shapes of load:

- :func:`closed_loop`: every connection sends its next request as soon as the
  previous one is answered, for a fixed time (the highest rate the server takes);
- :func:`paced`: requests are started at a fixed rate whatever the answers do
  (latency at a given load), on a bounded pool of connections.

Every wait is bounded by :data:`REQUEST_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: Longest wait for one answer, in seconds.
REQUEST_TIMEOUT_S = 15.0
#: Longest answer head (status line and headers) read, in bytes.
MAX_HEAD_BYTES = 16 * 1024


class LoadError(RuntimeError):
    """The server could not be reached or answered something this client cannot read."""


@dataclass(frozen=True)
class Request:
    """One request to send: the path, the JSON body and extra headers."""

    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class KeepAliveConnection:
    """One HTTP/1.1 connection to ``host:port`` that stays open between requests.

    Args:
        host: the server's address (127.0.0.1).
        port: its port.
        token: the bearer token sent with every request.
    """

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host = host
        self.port = port
        self._fixed = (
            f"Host: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
            "Connection: keep-alive\r\n"
        ).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (bounded).

        Raises:
            LoadError: the server refused or did not answer.
        """
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEAD_BYTES * 4
                )
        except (OSError, TimeoutError) as exc:
            raise LoadError(
                f"could not connect to {self.host}:{self.port} ({exc!r}); is the"
                " backend running?"
            ) from None

    async def close(self) -> None:
        """Close the connection (safe to call twice)."""
        writer, self._writer = self._writer, None
        self._reader = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def send(self, method: str, request: Request) -> tuple[int, bytes]:
        """Send one request and read its answer.

        Returns:
            ``(status, body)``.

        Raises:
            LoadError: the connection is closed, broke, timed out, or the answer
                is not an HTTP/1.1 answer with a ``Content-Length``.
        """
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise LoadError("the connection is not open; call open() first")
        extra = "".join(f"{name}: {value}\r\n" for name, value in request.headers)
        head = (
            f"{method} {request.path} HTTP/1.1\r\n".encode("latin-1")
            + self._fixed
            + extra.encode("latin-1")
            + f"Content-Length: {len(request.body)}\r\n\r\n".encode("latin-1")
        )
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                writer.write(head + request.body)
                raw_head = await reader.readuntil(b"\r\n\r\n")
                status, length = parse_head(raw_head)
                body = await reader.readexactly(length) if length else b""
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise LoadError(
                f"{method} {request.path} on {self.host}:{self.port} failed"
                f" ({type(exc).__name__})"
            ) from None
        except asyncio.LimitOverrunError:
            await self.close()
            raise LoadError(
                f"{method} {request.path}: the answer's head is over"
                f" {MAX_HEAD_BYTES} bytes"
            ) from None
        return status, body


def parse_head(raw: bytes) -> tuple[int, int]:
    """Read the status and ``Content-Length`` of an answer's head.

    Raises:
        LoadError: it is not an HTTP/1.x status line, or it has no
            ``Content-Length`` (a chunked answer is not read by this client).
    """
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise LoadError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    length: int | None = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise LoadError("the answer has no Content-Length; this client cannot read it")
    return int(parts[1]), length


@dataclass
class LoadResult:
    """What a load run saw.

    Attributes:
        seconds: how long requests were being started.
        statuses: answers counted by status code (``0`` for transport failures).
        latencies_ms: each answered request's time, in milliseconds.
        errors: the first few transport failures, as text.
    """

    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Answers with status 202."""
        return self.statuses[202]

    @property
    def rate(self) -> float:
        """Accepted answers per second."""
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    def failures_text(self) -> str:
        """A short account of the answers that were not 202 (empty when none)."""
        other = {code: n for code, n in sorted(self.statuses.items()) if code != 202}
        if not other:
            return ""
        counts = ", ".join(f"{n} x {code or 'no answer'}" for code, n in other.items())
        first = f" (first: {self.errors[0]})" if self.errors else ""
        return counts + first


async def open_pool(
    host: str, port: int, token: str, size: int
) -> list[KeepAliveConnection]:
    """Open ``size`` connections; close them all again if one fails.

    Raises:
        LoadError: a connection could not be opened.
    """
    pool = [KeepAliveConnection(host, port, token) for _ in range(size)]
    try:
        await asyncio.gather(*(connection.open() for connection in pool))
    except BaseException:
        await close_pool(pool)
        raise
    return pool


async def close_pool(pool: list[KeepAliveConnection]) -> None:
    """Close every connection of ``pool``."""
    await asyncio.gather(*(connection.close() for connection in pool))


def _record(
    result: LoadResult, outcome: tuple[int, bytes] | LoadError, started: float
) -> None:
    if isinstance(outcome, LoadError):
        result.statuses[0] += 1
        if len(result.errors) < 5:
            result.errors.append(str(outcome))
        return
    status, _body = outcome
    result.statuses[status] += 1
    result.latencies_ms.append((time.perf_counter() - started) * 1000)


async def _send(
    connection: KeepAliveConnection, request: Request
) -> tuple[int, bytes] | LoadError:
    try:
        return await connection.send("POST", request)
    except LoadError as exc:
        return exc


async def closed_loop(
    pool: list[KeepAliveConnection],
    make_request: Callable[[], Request],
    seconds: float,
    *,
    on_tick: Callable[[LoadResult, float], None] | None = None,
) -> LoadResult:
    """Keep every connection busy with ``POST`` requests for ``seconds``.

    A connection that breaks is reopened once per failure; answers that arrive
    after the time is up are counted, but no new request starts then.

    Args:
        pool: open connections.
        make_request: makes the next request (called once per request).
        seconds: how long to start new requests.
        on_tick: called about once a second with the result so far and the
            seconds elapsed (for progress lines).
    """
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(connection: KeepAliveConnection) -> None:
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            outcome = await _send(connection, make_request())
            _record(result, outcome, begun)
            if isinstance(outcome, LoadError) and not await _reopen(
                connection, deadline
            ):
                return

    ticker = asyncio.create_task(_tick(result, started, on_tick))
    try:
        await asyncio.gather(*(worker(connection) for connection in pool))
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    result.seconds = time.perf_counter() - started
    return result


async def paced(
    pool: list[KeepAliveConnection],
    make_request: Callable[[], Request],
    rate: float,
    seconds: float,
    *,
    on_sent: Callable[[Request, float], None] | None = None,
    on_tick: Callable[[LoadResult, float], None] | None = None,
) -> LoadResult:
    """Start ``POST`` requests at ``rate`` per second for ``seconds``.

    Requests are due at fixed times; when every connection is busy the next one
    waits for a free connection (so a slow server lowers the rate rather than
    growing an unbounded backlog) and the run reports the rate it really kept.

    Args:
        pool: open connections; at most this many requests are in flight.
        make_request: makes the next request.
        rate: requests started per second.
        seconds: how long to start requests.
        on_sent: called with each request and the wall-clock time it was sent.
        on_tick: called about once a second with the result so far.
    """
    result = LoadResult()
    idle: asyncio.Queue[KeepAliveConnection] = asyncio.Queue()
    for connection in pool:
        idle.put_nowait(connection)
    in_flight: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    total = int(rate * seconds)

    async def one(connection: KeepAliveConnection, request: Request) -> None:
        begun = time.perf_counter()
        try:
            outcome = await _send(connection, request)
            _record(result, outcome, begun)
            if isinstance(outcome, LoadError):
                await _reopen(connection, begun + REQUEST_TIMEOUT_S)
        finally:
            idle.put_nowait(connection)

    ticker = asyncio.create_task(_tick(result, started, on_tick))
    try:
        for index in range(total):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            connection = await idle.get()
            request = make_request()
            if on_sent is not None:
                on_sent(request, time.time())
            task = asyncio.create_task(one(connection, request))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        result.seconds = time.perf_counter() - started
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT_S + 1)
    finally:
        for task in in_flight:
            task.cancel()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return result


async def _reopen(connection: KeepAliveConnection, deadline: float) -> bool:
    """Reopen a broken connection; ``False`` when past ``deadline`` or it failed."""
    await connection.close()
    if time.perf_counter() >= deadline:
        return False
    try:
        await connection.open()
    except LoadError:
        return False
    return True


async def _tick(
    result: LoadResult,
    started: float,
    on_tick: Callable[[LoadResult, float], None] | None,
) -> None:
    if on_tick is None:
        return
    while True:
        await asyncio.sleep(1.0)
        on_tick(result, time.perf_counter() - started)
