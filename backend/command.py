"""``recipe-pipeline backend``: the HTTP API served by uvicorn.

Binds 127.0.0.1 unless told otherwise; ``--port 0`` picks a free port. With
``--ready-file`` it writes ``backend_url`` (and ``api_token_file`` when it generated
the token) once the server answers. SIGTERM or SIGINT stop it: it stops taking
requests, lets running ones finish (bounded), flushes the producer (bounded) and
exits 0.

When ``API_TOKEN`` is unset a token is generated for this run, never logged, and
written to a file only the user can read; its path goes in the ready file and in the
log. The file is removed when the backend stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

from pipeline_core.commands import CommandFailed, write_ready_file

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the backend's options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to bind; 0 picks a free one"
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write a JSON object with backend_url here once the API answers",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per HTTP request (off by default: accepted writes are"
        " logged with their trace id, and /metrics counts every answer)",
    )
    parser.add_argument(
        "--api-token-file",
        type=Path,
        help="where to write the generated token when API_TOKEN is unset"
        " (default: a new private temporary folder)",
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 65535")
    return value


def run(args: argparse.Namespace) -> int:
    """Serve the API until SIGTERM or SIGINT; 0 on a clean stop."""

    from backend.app import create_app
    from backend.server import BackendServer, server_config
    from pipeline_core.settings import load_settings

    settings = load_settings()
    with _api_token(settings.api_token, args.api_token_file) as (token, token_file):
        app = create_app(settings, api_token=token)
        config = server_config(
            app,
            host=args.host,
            port=args.port,
            publish_timeout_seconds=settings.publish_timeout_seconds,
            access_log=args.access_log,
        )

        def report(port: int) -> None:
            url = f"http://{_url_host(args.host)}:{port}"
            logger.info("backend answering at %s", url)
            if args.ready_file is not None:
                payload: dict[str, str] = {"backend_url": url}
                if token_file is not None:
                    payload["api_token_file"] = str(token_file)
                write_ready_file(args.ready_file, payload)

        server = BackendServer(config, on_started=report)
        try:
            asyncio.run(server.serve())
        except SystemExit:
            error = app.state.startup_error
            reason = (
                str(error)
                if error is not None
                else f"could not listen on {args.host}:{args.port} (is the port in"
                " use? pick another with --port, or 0 for a free one)"
            )
            raise CommandFailed(f"the backend did not start: {reason}") from None
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def _api_token(
    configured: object, token_file: Path | None
) -> Generator[tuple[str | None, Path | None], None, None]:
    """Yield ``(token, file)``: ``(None, None)`` when ``API_TOKEN`` is set."""
    if configured is not None:
        yield None, None
        return

    from backend.security import generate_token, write_token_file

    token = generate_token()
    private_dir: Path | None = None
    if token_file is None:
        private_dir = Path(tempfile.mkdtemp(prefix="recipe-backend-"))
        token_file = private_dir / "api-token"
    token_file = token_file.expanduser().resolve()
    try:
        write_token_file(token_file, token)
    except OSError as exc:
        raise CommandFailed(
            f"cannot write the generated API token to {token_file}"
            f" ({exc.strerror or exc}); choose another --api-token-file"
        ) from None
    logger.info("API_TOKEN unset: generated a token, stored in %s", token_file)
    try:
        yield token, token_file
    finally:
        token_file.unlink(missing_ok=True)
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
