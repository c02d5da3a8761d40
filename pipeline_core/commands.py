"""What every subcommand of ``recipe-pipeline`` shares: its failure type, ready files.

A subcommand module exposes ``configure(parser)`` and ``run(args) -> int`` (see
``recipe_pipeline.cli``). It raises :class:`CommandFailed` with a one-line reason the
user can act on; the CLI prints it and exits 1.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class CommandFailed(Exception):
    """A subcommand failed for a reason the user can act on; the message says it."""


def write_ready_file(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically.

    A reader polling for the file never sees it half-written: the JSON goes to a
    temporary file in the same folder, which is then renamed over ``path``.
    """
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
