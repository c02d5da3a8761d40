"""The backend as the benchmark runs it: ``python -m recipe_pipeline.bench.api_server``.

The same app (:func:`backend.app.create_app`), the same uvicorn server class and
settings as ``recipe-pipeline backend``, in a process of its own, with one addition:
``POST /bench/favorites-unpublished``, the bare endpoint the API accept rate is
compared with. Both endpoints are served by this one process, so the comparison
holds everything but the publish to Kafka equal.

Configuration comes from the environment (``API_TOKEN`` is required). With
``--ready-file`` it writes ``backend_url`` once the server answers; SIGTERM or SIGINT
stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pipeline_core.commands import write_ready_file

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Serve the backend with the bench endpoint until SIGTERM or SIGINT."""

    from backend.app import create_app
    from backend.server import BackendServer, server_config
    from pipeline_core.settings import load_settings

    parser = argparse.ArgumentParser(prog="recipe_pipeline.bench.api_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level="INFO",
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    settings = load_settings()
    if settings.api_token is None:
        logger.error("API_TOKEN is not set; the benchmark sets it for this process")
        return 2
    app = create_app(settings, bench_endpoint=True)
    config = server_config(
        app,
        host="127.0.0.1",
        port=args.port,
        publish_timeout_seconds=settings.publish_timeout_seconds,
    )

    def report(port: int) -> None:
        url = f"http://127.0.0.1:{port}"
        logger.info("bench backend answering at %s", url)
        if args.ready_file is not None:
            write_ready_file(args.ready_file, {"backend_url": url})

    server = BackendServer(config, on_started=report)
    try:
        asyncio.run(server.serve())
    except SystemExit:
        error = app.state.startup_error
        logger.error("the backend did not start: %s", error or "uvicorn failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
