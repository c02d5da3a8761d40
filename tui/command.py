"""``recipe-pipeline dashboard``: start the stack (or attach) and open the dashboard.

Without ``--attach`` the dashboard starts the embedded stack (broker, backend and
consumer as supervised children) and stops it when it quits, also on SIGTERM or a
crash. With ``--attach`` it uses services that already run: the addresses come from
``--ready-file`` (what ``recipe-pipeline up --ready-file`` wrote) or else from the
environment (``KAFKA_BOOTSTRAP_SERVERS``, ``BACKEND_URL``, ``DATABASE_URL``).

The bot always runs inside the dashboard on the local gateway, also when
``DISCORD_TOKEN`` is set: the dashboard never connects to Discord itself (run
``recipe-pipeline bot`` for that).

The dashboard never writes to stdout or stderr while it runs; its log goes to
``<data-dir>/run/dashboard.log``. A dashboard that would start a stack on a data dir
or SQLite database another running stack holds is refused before it opens (one line,
exit 1), and writes nothing there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from pipeline_core.commands import CommandFailed

if TYPE_CHECKING:
    from pipeline_core.settings import Settings
    from pipeline_core.stack import StackConfig
    from tui.app import Addresses, DashboardApp, DashboardConfig

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``dashboard``."""
    parser.add_argument(
        "--attach",
        action="store_true",
        help="use services that already run instead of starting the stack",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="with --attach: the ready file 'recipe-pipeline up' wrote",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/stack"),
        help="broker data, children's logs and the dashboard log (default data/stack)",
    )


def run(args: argparse.Namespace) -> int:
    """Open the dashboard; return once it quit and what it started has stopped."""
    from pipeline_core.settings import load_settings
    from tui.app import DashboardApp

    settings = load_settings()
    config = dashboard_config(settings, args.attach, args.ready_file, args.data_dir)
    if config.stack is not None:
        _refuse_a_used_stack(config.stack)
    _log_to_file(args.data_dir / "run" / "dashboard.log", args.log_level)
    return asyncio.run(_run_app(DashboardApp(config)))


def dashboard_config(
    settings: Settings, attach: bool, ready_file: Path | None, data_dir: Path
) -> DashboardConfig:
    """The dashboard's configuration from the settings and the command line.

    Raises:
        CommandFailed: ``--ready-file`` without ``--attach``, or a ready file that
            cannot be read or lacks a key.
    """
    from pipeline_core.stack import StackConfig
    from tui.app import Addresses, DashboardConfig

    if ready_file is not None and not attach:
        raise CommandFailed("--ready-file is read only with --attach; add --attach")
    if not attach:
        return DashboardConfig(
            topic=settings.favorites_topic,
            group=settings.consumer_group,
            stack=StackConfig.from_settings(settings, data_dir),
        )
    token = settings.api_token
    if ready_file is not None:
        addresses, token_file = _read_ready_file(ready_file)
        if token is None and token_file is not None:
            token = _read_token(token_file)
    else:
        addresses = Addresses(
            settings.bootstrap_or_default, settings.backend_url, settings.database_url
        )
    return DashboardConfig(
        topic=settings.favorites_topic,
        group=settings.consumer_group,
        attach=addresses,
        api_token=token,
    )


def _refuse_a_used_stack(stack: StackConfig) -> None:
    from pipeline_core.stack import StackError
    from pipeline_core.stack.stack import check_not_in_use

    try:
        check_not_in_use(stack)
    except StackError as exc:
        raise CommandFailed(str(exc)) from None


def _read_ready_file(path: Path) -> tuple[Addresses, Path | None]:
    from tui.app import Addresses

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        addresses = Addresses(
            str(payload["kafka_bootstrap"]),
            str(payload["backend_url"]),
            str(payload["database_url"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandFailed(
            f"cannot use the ready file {path}: {exc!r}; give the file that"
            " 'recipe-pipeline up --ready-file' wrote"
        ) from None
    token_file = payload.get("api_token_file")
    return addresses, Path(token_file) if token_file else None


def _read_token(path: Path) -> SecretStr:
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise CommandFailed(
            f"cannot read the API token file {path}: {exc.strerror}; set API_TOKEN"
        ) from None


def _log_to_file(path: Path, level: str) -> None:
    """Send every log record to ``path``: the screen belongs to the dashboard."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


async def _run_app(app: DashboardApp) -> int:
    """Run the app; whatever ends it (quit, SIGTERM, a crash), stop what it started."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: app.call_later(app.action_quit))
    try:
        code = await app.run_async()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await app.shutdown()
    if app.failure is not None:
        raise CommandFailed(app.failure)
    return code or 0
