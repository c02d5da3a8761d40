"""Pure ASGI layers around the app: body limit, trace ids, request metrics.

They are plain ASGI so that they see every response, including the ones they make
themselves (``413``, an invalid ``X-Trace-Id``) and the ones FastAPI makes before a
route runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.metrics import BackendMetrics
from pipeline_core.events import TRACE_ID_RE, new_trace_id

logger = logging.getLogger(__name__)

TRACE_HEADER = b"x-trace-id"
#: Largest request body the API reads; larger bodies answer 413 unparsed.
MAX_BODY_BYTES = 16 * 1024
#: How much of a refused body is read and dropped before answering 413.
DRAIN_LIMIT_BYTES = 2 * 1024 * 1024
#: How long draining a refused body may take.
DRAIN_TIMEOUT_S = 5.0


async def send_json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete JSON response from ASGI code."""
    body = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Answer ``413`` for request bodies over ``max_body_bytes``, before parsing.

    A body with a ``Content-Length`` over the limit, or a chunked one that grows past
    it, is refused without being parsed. Before answering, the rest of the body is
    read and discarded up to :data:`DRAIN_LIMIT_BYTES` (and for at most
    :data:`DRAIN_TIMEOUT_S`), so that clients which send the whole body before
    reading the answer (most do) get the ``413`` rather than a reset connection;
    past that bound the connection is closed on them. Bodies within the limit are
    buffered (at most ``max_body_bytes``) and handed to the app unchanged.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        """Wrap ``app``."""
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body size of HTTP requests; pass other scopes through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            if declared <= DRAIN_LIMIT_BYTES:
                await _drain(receive, 0)
            await self._refuse(scope, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                if message.get("more_body", False):
                    await _drain(receive, size)
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        logger.info(
            "request body over %d bytes refused: %s %s",
            self.max_body_bytes,
            scope["method"],
            scope["path"],
        )
        await send_json(
            send,
            413,
            {"detail": f"the request body is larger than {self.max_body_bytes} bytes"},
            [(b"connection", b"close")],
        )


async def _drain(receive: Receive, already: int) -> None:
    """Read and drop the rest of a refused body, within the drain bounds."""
    drained = already
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            while drained <= DRAIN_LIMIT_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        logger.info("refused body not drained within %ss", DRAIN_TIMEOUT_S)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that first yields the buffered body, then defers to ``receive``."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered, pending
        if not delivered:
            delivered = True
            if pending is not None and not chunks:
                message, pending = pending, None
                return message
            return {
                "type": "http.request",
                "body": b"".join(chunks),
                "more_body": False,
            }
        return await receive()

    return replay


class TraceIdMiddleware:
    """Take the caller's ``X-Trace-Id`` (validated) or make one; echo it back.

    The trace id is put in ``request.state.trace_id`` for the routes. An
    ``X-Trace-Id`` that is not 8 to 64 letters, digits, ``.``, ``_`` or ``-``
    answers ``422`` (with a fresh trace id in the response header).
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Attach the trace id to the request and to every response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        given = _header(scope, TRACE_HEADER)
        trace_id = given if given and TRACE_ID_RE.fullmatch(given) else new_trace_id()
        header = (TRACE_HEADER, trace_id.encode("ascii"))
        if given is not None and given != trace_id:
            await send_json(
                send,
                422,
                {
                    "detail": "X-Trace-Id must be 8 to 64 letters, digits, '.', '_'"
                    " or '-'; leave it out to get one made for you"
                },
                [header],
            )
            return

        scope.setdefault("state", {})["trace_id"] = trace_id

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_trace)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestMetricsMiddleware:
    """Count answered requests by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: BackendMetrics) -> None:
        """Wrap ``app``; counts go to ``metrics.requests``."""
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the status of each HTTP response (500 when the app raised)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(
                route=template, method=scope["method"], status=str(status)
            ).inc()
