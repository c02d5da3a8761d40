"""A supervisor that starts one child and then waits to be killed (test helper).

``python orphan_parent.py RUN_DIR [--pause]``: starts ``stack_child.py ready`` under
a :class:`ComponentProcess`, pauses it (SIGSTOP) when asked, prints the child's pid
on stdout, then sleeps.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pipeline_core.stack.process import ComponentProcess

CHILD = Path(__file__).with_name("stack_child.py")


async def main(run_dir: Path, pause: bool) -> None:
    component = ComponentProcess(
        "child",
        [sys.executable, str(CHILD), "ready"],
        env=dict(os.environ),
        run_dir=run_dir,
    )
    await component.start(timeout=30)
    if pause:
        component.pause()
    sys.stdout.write(f"{component.pid}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), "--pause" in sys.argv[2:]))
