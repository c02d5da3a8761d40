"""The uvicorn server the ``backend`` command runs (imported only by that command)."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

#: Seconds a graceful stop gets beyond the publish deadline of a request in flight.
GRACE_MARGIN_S = 2


def server_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    publish_timeout_seconds: float,
    access_log: bool = False,
) -> uvicorn.Config:
    """The uvicorn configuration the backend runs with.

    Logging stays with the command's own configuration, and a graceful stop waits
    for requests in flight as long as their publish may take, plus a margin.

    uvicorn's access log (one line per request) is off unless ``access_log``: each
    accepted write logs its own ``event accepted`` line with the trace id, every
    answer is counted by route and status at ``/metrics``, and under load the
    extra line per request cost the event loop more time than the route's own work.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        access_log=access_log,
        timeout_graceful_shutdown=math.ceil(publish_timeout_seconds) + GRACE_MARGIN_S,
    )


def freeze_startup_heap() -> int:
    """Collect, then move every object alive now out of the garbage collector's reach.

    After startup the process holds about 100,000 long-lived objects (FastAPI,
    pydantic, aiokafka, SQLAlchemy, the catalog). A full collection walks them
    all and stops the event loop for 50 to 200 ms on this project's 2-core
    machine, several times a minute under load: every request in flight waits.
    Frozen, they are skipped, and a full collection takes about 1 ms. Garbage made
    at startup is collected first; objects frozen here are only ever freed after
    :func:`thaw_startup_heap`.

    Returns:
        How many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("startup heap frozen: %d objects", frozen)
    return frozen


def thaw_startup_heap() -> None:
    """Give the objects frozen by :func:`freeze_startup_heap` back to the collector."""
    gc.unfreeze()


class BackendServer(uvicorn.Server):
    """A uvicorn server that reports its bound port once it answers.

    Unlike plain uvicorn, a SIGTERM or SIGINT ends :meth:`serve` normally instead of
    re-raising the signal afterwards, so the command exits 0 on a clean stop. Once
    started it freezes the startup heap (:func:`freeze_startup_heap`) and thaws it
    again on shutdown.
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
            freeze_startup_heap()
            port = int(self.servers[0].sockets[0].getsockname()[1])
            self._on_started(port)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop as uvicorn does, then thaw the startup heap."""
        try:
            await super().shutdown(sockets)
        finally:
            thaw_startup_heap()

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
