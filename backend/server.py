"""The uvicorn server the ``backend`` command runs (imported only by that command)."""

from __future__ import annotations

import contextlib
import math
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn
from starlette.types import ASGIApp

#: Seconds a graceful stop gets beyond the publish deadline of a request in flight.
GRACE_MARGIN_S = 2


def server_config(
    app: ASGIApp, *, host: str, port: int, publish_timeout_seconds: float
) -> uvicorn.Config:
    """The uvicorn configuration the backend runs with.

    Logging stays with the command's own configuration, and a graceful stop waits
    for requests in flight as long as their publish may take, plus a margin.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(publish_timeout_seconds) + GRACE_MARGIN_S,
    )


class BackendServer(uvicorn.Server):
    """A uvicorn server that reports its bound port once it answers.

    Unlike plain uvicorn, a SIGTERM or SIGINT ends :meth:`serve` normally instead of
    re-raising the signal afterwards, so the command exits 0 on a clean stop.
    """

    def __init__(
        self, config: uvicorn.Config, *, on_started: Callable[[int], None]
    ) -> None:
        """Serve ``config``; call ``on_started(port)`` once the socket listens."""
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then report the real port (``--port 0``)."""
        await super().startup(sockets)
        if self.started and not self.should_exit:
            port = int(self.servers[0].sockets[0].getsockname()[1])
            self._on_started(port)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Stop gracefully on SIGTERM or SIGINT, then return without re-raising."""
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
