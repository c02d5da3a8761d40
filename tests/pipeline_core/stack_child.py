"""A small stand-in component for the supervisor tests (not a test module).

``python stack_child.py MODE --ready-file F``. Modes: ``ready`` writes the ready
file and runs until SIGTERM (exit 0); ``stubborn`` is ready but ignores SIGTERM;
``crash`` logs a reason and exits 3 before it is ready; ``silent`` never gets ready;
``bad-ready`` writes a ready file that is a JSON list; ``chatty`` is ready and logs
many numbered lines.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path


def main() -> int:
    mode = sys.argv[1]
    ready = Path(sys.argv[sys.argv.index("--ready-file") + 1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "crash":
        sys.stderr.write("child: cannot bind the port, giving up\n")
        return 3
    if mode == "silent":
        stop.wait(60)
        return 0
    payload: object = ["not", "an", "object"]
    if mode != "bad-ready":
        payload = {"pid": os.getpid(), "answer": 42}
    if mode == "chatty":
        for number in range(1000):
            sys.stdout.write(f"line {number}\n")
        sys.stdout.flush()
    sys.stdout.write("child: ready\n")
    sys.stdout.flush()
    # Written as the real components write it: whole, by a rename.
    partial = ready.with_name(ready.name + ".partial")
    partial.write_text(json.dumps(payload))
    partial.replace(ready)
    stop.wait(60)
    sys.stdout.write("child: stopping\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
