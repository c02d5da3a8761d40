"""The real bot through the local gateway, with backends that misbehave.

These need no broker: the backend is a closed port, or a small real HTTP server that
answers slowly or with errors. The full pipeline is in ``test_bot_pipeline.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from fastapi import FastAPI, Response

from bot import replies
from tests.bot.conftest import API_TOKEN, bot_on_gateway, serve

USER = 123456789012345678


def _recipe(recipe_id: str) -> dict[str, Any]:
    return {"id": recipe_id, "title": "Shakshuka", "cuisine": "X", "minutes": 30}


def _accepted() -> dict[str, Any]:
    return {
        "event_id": "6f1c8a3e-0000-4000-8000-000000000000",
        "trace_id": "t" * 16,
        "topic": "t",
        "partition": 0,
        "offset": 1,
    }


async def test_backend_down_prefix_gets_friendly_error_and_no_saved_claim(
    closed_port: int,
) -> None:
    """!save with the backend down: one error reply that says try again, no 'Saved'."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("!save 12", user_id=USER, user_name="Ada")

    assert exchange.error is None
    assert len(exchange.replies) == 1
    reply = exchange.replies[0]
    assert replies.is_error(reply)
    assert "try again" in reply
    assert "Saved" not in reply
    assert "Traceback" not in reply


async def test_backend_down_slash_defers_then_one_ephemeral_error_followup(
    closed_port: int,
) -> None:
    """/favorite add with the backend down: deferred, then one ephemeral follow-up."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:12", user_id=USER, user_name="Ada"
        )

    assert [item.kind for item in exchange.outbound] == ["defer", "followup"]
    followup = exchange.outbound[1]
    assert followup.ephemeral
    assert replies.is_error(followup.text)
    assert "not reachable" in followup.text


async def test_non_numeric_recipe_gets_bad_argument_reply_prefix(
    closed_port: int,
) -> None:
    """!save pasta is answered with the bad-argument reply before any backend call."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("!save pasta", user_id=USER, user_name="Ada")

    assert len(exchange.replies) == 1
    assert "is not a recipe number" in exchange.replies[0]


async def test_non_numeric_recipe_gets_bad_argument_reply_slash(
    closed_port: int,
) -> None:
    """/favorite add recipe:pasta gets the bad-argument reply, ephemeral, once."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:pasta", user_id=USER, user_name="Ada"
        )

    assert len(exchange.outbound) == 1
    assert exchange.outbound[0].kind == "response"
    assert exchange.outbound[0].ephemeral
    assert "is not a recipe number" in exchange.outbound[0].text


async def test_missing_argument_reply_shows_usage(closed_port: int) -> None:
    """!save without a recipe says what is missing and how the command is written."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("!save", user_id=USER, user_name="Ada")

    assert exchange.replies == [
        replies.error("Something is missing: `recipe`. Usage: `!save <recipe number>`.")
    ]


async def test_unknown_prefix_command_points_to_help(closed_port: int) -> None:
    """An unknown !command gets one reply pointing to !help."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("!bake 12", user_id=USER, user_name="Ada")

    assert len(exchange.replies) == 1
    assert "!help" in exchange.replies[0]


async def test_plain_chat_message_gets_no_reply(closed_port: int) -> None:
    """A message without the prefix is not a command and gets no reply."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("I like soup", user_id=USER, user_name="Ada")

    assert exchange.replies == []
    assert exchange.error is None


async def test_help_lists_every_prefix_and_slash_command(closed_port: int) -> None:
    """!help names the prefix and slash commands."""
    async with bot_on_gateway(f"http://127.0.0.1:{closed_port}") as gateway:
        exchange = await gateway.send("!help", user_id=USER, user_name="Ada")

    text = exchange.replies[0]
    for name in ("!save", "!unsave", "!favorites", "!recipes", "/favorite add"):
        assert name in text
    for name in ("/favorite remove", "/favorite list", "/recipe search"):
        assert name in text


async def test_slow_backend_interaction_deferred_first_then_exactly_one_followup() -> (
    None
):
    """A backend answering after 4 s: deferred before the call, one follow-up after."""
    app = FastAPI()
    calls: list[str] = []

    @app.get("/v1/recipes/{recipe_id}")
    async def recipe(recipe_id: str) -> dict[str, Any]:
        calls.append("get")
        await asyncio.sleep(4)
        return _recipe(recipe_id)

    @app.post("/v1/favorites", status_code=202)
    async def add() -> dict[str, Any]:
        calls.append("post")
        return _accepted()

    async with serve(app) as url, bot_on_gateway(url) as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:1", user_id=USER, user_name="Ada", timeout=20
        )

    assert [item.kind for item in exchange.outbound] == ["defer", "followup"]
    assert exchange.followups == 1
    assert "Saved **Shakshuka**" in exchange.replies[0]
    assert calls == ["get", "post"]


async def test_503_is_retried_with_retry_after_then_succeeds() -> None:
    """A 503 with Retry-After is retried (bounded) and the favourite then saved."""
    app = FastAPI()
    posts: list[int] = []

    @app.get("/v1/recipes/{recipe_id}")
    async def recipe(recipe_id: str) -> dict[str, Any]:
        return _recipe(recipe_id)

    @app.post("/v1/favorites", status_code=202, response_model=None)
    async def add(response: Response) -> dict[str, Any]:
        posts.append(1)
        if len(posts) == 1:
            response.status_code = 503
            response.headers["Retry-After"] = "0"
            return {"detail": "broker did not acknowledge"}
        return _accepted()

    async with serve(app) as url, bot_on_gateway(url) as gateway:
        exchange = await gateway.send("!save 1", user_id=USER, user_name="Ada")

    assert len(posts) == 2
    assert exchange.replies[0].startswith("⭐ Saved")


async def test_503_every_time_ends_in_unavailable_reply_after_bounded_attempts() -> (
    None
):
    """A backend that always answers 503 is tried 3 times, then the user is told."""
    app = FastAPI()
    posts: list[int] = []

    @app.get("/v1/recipes/{recipe_id}")
    async def recipe(recipe_id: str) -> dict[str, Any]:
        return _recipe(recipe_id)

    @app.post("/v1/favorites", status_code=503)
    async def add() -> dict[str, Any]:
        posts.append(1)
        return {"detail": "broker did not acknowledge"}

    async with serve(app) as url, bot_on_gateway(url) as gateway:
        exchange = await gateway.send("!save 1", user_id=USER, user_name="Ada")

    assert len(posts) == 3
    assert replies.is_error(exchange.replies[0])
    assert "Saved" not in exchange.replies[0]


async def test_401_reply_asks_for_an_admin_and_leaks_no_token() -> None:
    """A backend refusing the token: the reply names the problem, never the token."""
    app = FastAPI()
    seen: list[str] = []

    @app.get("/v1/recipes/{recipe_id}")
    async def recipe(recipe_id: str) -> dict[str, Any]:
        return _recipe(recipe_id)

    @app.post("/v1/favorites", status_code=401)
    async def add(response: Response) -> dict[str, Any]:
        return {"detail": "missing or wrong bearer token"}

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        seen.append(request.headers.get("authorization", ""))
        return await call_next(request)

    async with serve(app) as url, bot_on_gateway(url) as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:1", user_id=USER, user_name="A"
        )

    from tests.bot.conftest import API_TOKEN

    assert seen[-1] == f"Bearer {API_TOKEN}"
    assert "admin" in exchange.replies[0]
    assert API_TOKEN not in exchange.replies[0]


async def test_trace_id_is_derived_from_the_interaction_id() -> None:
    """Every backend call of one interaction carries X-Trace-Id discord-<id>."""
    app = FastAPI()
    traces: list[str] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        traces.append(request.headers.get("x-trace-id", ""))
        return await call_next(request)

    @app.get("/v1/recipes/{recipe_id}")
    async def recipe(recipe_id: str) -> dict[str, Any]:
        return _recipe(recipe_id)

    @app.post("/v1/favorites", status_code=202)
    async def add() -> dict[str, Any]:
        return _accepted()

    async with serve(app) as url, bot_on_gateway(url) as gateway:
        exchange = await gateway.send(
            "/favorite add recipe:1", user_id=USER, user_name="A"
        )

    assert traces == [f"discord-{exchange.event_id}"] * 2


def _discord_cli(backend_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BACKEND_URL": backend_url, "API_TOKEN": API_TOKEN, "PATH": "/usr/bin"}
    return subprocess.run(
        [sys.executable, "-m", "recipe_pipeline", "--log-level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_discord_cli_exits_non_zero_when_backend_is_down(closed_port: int) -> None:
    """With the backend down the CLI prints the friendly error and exits 1."""
    result = _discord_cli(
        f"http://127.0.0.1:{closed_port}",
        "discord",
        "/favorite add recipe:1",
        "--user-id",
        "42",
        "--user-name",
        "Ada",
    )

    assert result.returncode == 1
    assert "not reachable" in result.stdout
    assert "Traceback" not in result.stderr


def test_discord_cli_refused_slash_input_exits_non_zero(closed_port: int) -> None:
    """A slash command Discord's client would refuse: one line on stderr, exit 1."""
    result = _discord_cli(
        f"http://127.0.0.1:{closed_port}",
        "discord",
        "/favorite add",
        "--user-id",
        "42",
        "--user-name",
        "Ada",
    )

    assert result.returncode == 1
    assert result.stderr.strip().endswith("option recipe is required")


async def test_bot_command_runs_on_local_gateway_and_stops_on_sigterm(
    tmp_path: Any, closed_port: int
) -> None:
    """Without DISCORD_TOKEN: ready file says mode local; SIGTERM exits 0."""
    ready = tmp_path / "bot.json"
    env = {"BACKEND_URL": f"http://127.0.0.1:{closed_port}", "PATH": "/usr/bin"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "recipe_pipeline",
        "bot",
        "--ready-file",
        str(ready),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(30):
            while not ready.exists():
                assert process.returncode is None
                await asyncio.sleep(0.05)
        content = json.loads(ready.read_text(encoding="utf-8"))
    finally:
        process.terminate()
        code = await asyncio.wait_for(process.wait(), timeout=15)

    assert content["mode"] == "local"
    assert content["bot_user"] == "RecipeBot"
    assert code == 0
