"""Benchmark: ``POST /v1/favorites`` against a bare endpoint of the same app.

``python -m backend.benchmark`` starts one backend process (uvicorn, one worker,
access log off) serving both ``POST /v1/favorites`` and the hidden baseline ``POST
/bench/favorites-unpublished`` (validates and builds the event, does not publish),
then drives each in turn with the same concurrent HTTP load, alternating the two for
several rounds, and reports requests per second (medians) and the median of the
per-round ratios, which is less sensitive to other load on the machine. Kafka is
``KAFKA_BOOTSTRAP_SERVERS`` when set, else an embedded broker started for the run.

Limits: the load generator (httpx) runs on the same machine as the server and the
broker, so on a small machine the figures are for comparison between the two
endpoints, not capacity numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger(__name__)

PUBLISH_PATH = "/v1/favorites"
BARE_PATH = "/bench/favorites-unpublished"
SERVER_START_TIMEOUT_S = 60.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``serve``, the server it measures)."""
    parser = argparse.ArgumentParser(prog="python -m backend.benchmark")
    sub = parser.add_subparsers(dest="mode")
    serve = sub.add_parser("serve", help="(internal) the server under test")
    serve.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=8, help="alternations")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if args.mode == "serve":
        return _serve(args.ready_file)
    results = asyncio.run(_benchmark(args.seconds, args.rounds, args.concurrency))
    text = json.dumps(results, indent=2)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


def _serve(ready_file: Path) -> int:
    import uvicorn

    from backend.app import create_app
    from backend.server import BackendServer
    from pipeline_core.commands import write_ready_file
    from pipeline_core.settings import load_settings

    app = create_app(load_settings(), bench_endpoint=True)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False
    )

    def report(port: int) -> None:
        write_ready_file(ready_file, {"backend_url": f"http://127.0.0.1:{port}"})

    asyncio.run(BackendServer(config, on_started=report).serve())
    return 0


async def _benchmark(seconds: float, rounds: int, concurrency: int) -> dict[str, Any]:
    async with _kafka() as bootstrap, _server(bootstrap) as (url, token):
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, limits=limits, timeout=30
        ) as http:
            await _drive(http, PUBLISH_PATH, 2.0, concurrency)  # warm-up
            await _drive(http, BARE_PATH, 2.0, concurrency)
            runs: dict[str, list[float]] = {PUBLISH_PATH: [], BARE_PATH: []}
            for _ in range(rounds):
                for path in (BARE_PATH, PUBLISH_PATH):
                    runs[path].append(await _drive(http, path, seconds, concurrency))
    pairs = zip(runs[PUBLISH_PATH], runs[BARE_PATH], strict=True)
    return {
        "concurrency": concurrency,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "bare_rps_runs": [round(r, 1) for r in runs[BARE_PATH]],
        "publish_rps_runs": [round(r, 1) for r in runs[PUBLISH_PATH]],
        "bare_rps_median": round(statistics.median(runs[BARE_PATH]), 1),
        "publish_rps_median": round(statistics.median(runs[PUBLISH_PATH]), 1),
        "ratio_median_of_rounds": round(
            statistics.median(publish / bare for publish, bare in pairs), 3
        ),
        "cpus": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


async def _drive(
    http: httpx.AsyncClient, path: str, seconds: float, concurrency: int
) -> float:
    """Requests per second of ``path`` under ``concurrency`` workers for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            body = {
                "user_id": str(10_000 + number),
                "user_name": f"bench {number}",
                "recipe_id": str(1 + done % 100),
                "source": "api",
            }
            response = await http.post(path, json=body)
            if response.status_code != 202:
                raise RuntimeError(f"{path} answered {response.status_code}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def _kafka() -> AsyncIterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    from pipeline_core.broker.embedded import EmbeddedBroker

    async with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@contextlib.asynccontextmanager
async def _server(bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="backend-bench-") as workdir:
        ready_file = Path(workdir, "ready.json")
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FAVORITES_TOPIC": f"bench-favorites-{uuid.uuid4().hex[:8]}",
            "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
            "API_TOKEN": token,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backend.benchmark",
            "serve",
            "--ready-file",
            str(ready_file),
            env=env,
            cwd=workdir,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(SERVER_START_TIMEOUT_S):
                while not await asyncio.to_thread(ready_file.exists):
                    if process.returncode is not None:
                        raise RuntimeError("the benchmark server exited at start")
                    await asyncio.sleep(0.1)
            ready = json.loads(await asyncio.to_thread(ready_file.read_text))
            yield str(ready["backend_url"]), token
        finally:
            if process.returncode is None:
                process.terminate()
                async with asyncio.timeout(30):
                    await process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
