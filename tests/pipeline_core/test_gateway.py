"""The local gateway: payloads, the client-side slash rules, capture and history.

The bot here is the real recipe bot (its backend a closed port we own), so these
tests also fail loudly if a discord.py upgrade changes what the gateway relies on.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import discord
import pytest

from bot.app import build_bot
from pipeline_core.gateway import Exchange, LocalGateway, LocalGatewayError
from pipeline_core.gateway.slash import SlashInputError, parse_slash
from pipeline_core.settings import load_settings

#: The discord.py versions the gateway is tested with (pyproject pins the range).
TESTED_DISCORD_PY = ("2.7.",)

COMMANDS = [
    {
        "id": "10",
        "name": "favorite",
        "type": 1,
        "options": [
            {
                "type": 1,
                "name": "add",
                "options": [{"type": 3, "name": "recipe", "required": True}],
            },
            {"type": 1, "name": "list", "options": []},
        ],
    },
    {
        "id": "11",
        "name": "recipe",
        "type": 1,
        "options": [
            {
                "type": 1,
                "name": "search",
                "options": [
                    {"type": 3, "name": "query", "required": True, "max_length": 100},
                    {"type": 4, "name": "limit", "min_value": 1, "max_value": 25},
                ],
            }
        ],
    },
]


@pytest.fixture
async def gateway() -> AsyncIterator[LocalGateway]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        bot = build_bot(load_settings(backend_url=url, api_token="gw-test-token-1234"))
        async with LocalGateway(bot) as running:
            yield running


def test_discord_py_is_a_tested_version() -> None:
    """The installed discord.py is one the gateway was tested with."""
    assert discord.__version__.startswith(TESTED_DISCORD_PY), discord.__version__


def test_slash_options_are_typed_like_discords_client() -> None:
    """Integers are sent as numbers, text as text; values may hold spaces."""
    invocation = parse_slash("/recipe search query:pasta al forno limit:5", COMMANDS)

    sub = invocation.data["options"][0]
    assert invocation.path == "recipe search"
    assert sub["name"] == "search"
    assert sub["options"] == [
        {"type": 3, "name": "query", "value": "pasta al forno"},
        {"type": 4, "name": "limit", "value": 5},
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("/recipe search query:soup limit:five", "must be a whole number"),
        ("/recipe search query:soup limit:99", "at most 25"),
        ("/recipe search limit:3", "query is required"),
        ("/favorite add colour:red recipe:1", "expected options"),
        ("/favorite delete recipe:1", "needs one of: add, list"),
        ("/bake", "no slash command /bake"),
        ("/favorite add recipe:1 recipe:2", "given twice"),
    ],
)
def test_slash_input_discords_client_would_refuse_is_rejected(
    text: str, reason: str
) -> None:
    """Input Discord's client would not send raises SlashInputError naming why."""
    with pytest.raises(SlashInputError, match=reason):
        parse_slash(text, COMMANDS)


async def test_gateway_registers_the_bots_slash_commands(gateway: LocalGateway) -> None:
    """Entering the gateway syncs the bot's command tree; both groups are registered."""
    assert sorted(command["name"] for command in gateway.commands) == [
        "favorite",
        "recipe",
    ]


async def test_badly_typed_slash_option_never_reaches_the_bot(
    gateway: LocalGateway,
) -> None:
    """A refused slash command becomes an exchange with an error and no bot output."""
    exchange = await gateway.send("/favorite add", user_id=42, user_name="Ada")

    assert exchange.error == "option recipe is required"
    assert exchange.event_id is None
    assert exchange.outbound == []


async def test_user_id_must_be_a_snowflake(gateway: LocalGateway) -> None:
    """A user id that is not 1 to 20 digits is refused with a clear error."""
    with pytest.raises(LocalGatewayError, match="not a Discord snowflake"):
        await gateway.send("!help", user_id="12ab", user_name="Ada")


async def test_long_user_ids_reach_the_bot_exactly(gateway: LocalGateway) -> None:
    """17-, 18- and 19-digit user ids arrive in the bot's message unchanged."""
    seen: list[int] = []

    async def on_message(message: discord.Message) -> None:
        seen.append(message.author.id)

    gateway._bot.add_listener(on_message)
    ids = [12345678901234567, 123456789012345678, 1234567890123456789]
    for user_id in ids:
        await gateway.send("hello", user_id=user_id, user_name="Ada")

    assert seen == ids


async def test_history_and_subscribers_see_every_exchange(
    gateway: LocalGateway,
) -> None:
    """Each exchange is kept in history and handed to every subscriber, in order."""
    received: list[Exchange] = []
    unsubscribe = gateway.subscribe(received.append)

    first = await gateway.send("!help", user_id=1, user_name="A")
    second = await gateway.send("/favorite add recipe:x", user_id=1, user_name="A")
    unsubscribe()
    await gateway.send("!help", user_id=1, user_name="A")

    assert received == [first, second]
    assert list(gateway.history)[-3:-1] == [first, second]


async def test_history_is_bounded() -> None:
    """The history keeps only the most recent exchanges."""
    bot = build_bot(load_settings(backend_url="http://127.0.0.1:9", api_token=None))
    async with LocalGateway(bot, history=2) as gateway:
        for _ in range(3):
            await gateway.send("chat", user_id=1, user_name="A")

        assert len(gateway.history) == 2


async def test_autocomplete_returns_the_bots_choices(gateway: LocalGateway) -> None:
    """Autocomplete is answered through the real handler (no suggestions when down)."""
    exchange = await gateway.autocomplete(
        "/favorite add recipe:pas", option="recipe", user_id=1, user_name="A"
    )

    assert exchange.error is None
    assert [item.kind for item in exchange.outbound] == ["choices"]


async def test_hooks_are_removed_and_bot_closed_on_exit() -> None:
    """After the gateway exits, the bot's REST hook is gone and the bot is closed."""
    bot = build_bot(load_settings(backend_url="http://127.0.0.1:9", api_token=None))
    async with LocalGateway(bot):
        assert "request" in vars(bot.http)

    assert "request" not in vars(bot.http)
    assert bot.is_closed()


async def test_a_logged_in_bot_is_refused() -> None:
    """A gateway refuses a bot that another gateway already logged in."""
    bot = build_bot(load_settings(backend_url="http://127.0.0.1:9", api_token=None))
    async with LocalGateway(bot):
        with pytest.raises(LocalGatewayError, match="already logged in"):
            async with LocalGateway(bot):
                pass
