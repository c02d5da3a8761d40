"""Typed-in slash commands turned into interaction data, as Discord's client does it.

Discord's client, not the bot, checks a slash command's options against the
registered command: it refuses unknown options, missing required ones and values of
the wrong type, and sends integers as JSON numbers. The local gateway plays that
client, so these rules live here. Input looks like
``/favorite add recipe:12`` or ``/recipe search query:pasta al forno limit:5``; an
option's value runs to the next ``name:`` of that command, so values may hold spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline_core.gateway.payloads import Payload

SUB_COMMAND = 1
SUB_COMMAND_GROUP = 2
STRING = 3
INTEGER = 4
BOOLEAN = 5
NUMBER = 10

#: Discord's integer options are limited to what a double represents exactly.
MAX_SAFE_INTEGER = 2**53

_TYPE_NAMES = {STRING: "text", INTEGER: "a whole number", NUMBER: "a number"}


class SlashInputError(ValueError):
    """Discord's client would refuse to send this slash command (message says why)."""


@dataclass(frozen=True)
class SlashInvocation:
    """A slash command resolved against the registered commands.

    Attributes:
        command: the registered top-level command (as synced).
        data: the interaction's ``data`` object.
        path: the full command name, e.g. ``"favorite add"``.
    """

    command: Payload
    data: Payload
    path: str


def parse_slash(
    text: str, commands: list[Payload], *, focused: str | None = None
) -> SlashInvocation:
    """Resolve ``text`` against ``commands`` into interaction data.

    Args:
        text: what the user typed, starting with ``/``.
        commands: the application commands as registered (synced) with Discord.
        focused: for autocomplete, the option being typed; its value is sent as
            typed text and marked ``focused``, and missing required options are
            allowed, as in Discord's client.

    Raises:
        SlashInputError: unknown command or option, missing required option, or a
            value of the wrong type.
    """
    if not text.startswith("/"):
        raise SlashInputError("a slash command starts with '/'")
    words = text[1:].split()
    if not words:
        raise SlashInputError("type a command name after '/'")

    by_name = {command["name"]: command for command in commands}
    command = by_name.get(words[0])
    if command is None:
        known = ", ".join(f"/{name}" for name in sorted(by_name)) or "none"
        raise SlashInputError(f"no slash command /{words[0]} (registered: {known})")

    path = [words[0]]
    node: Payload = command
    rest = text[1:].split(None, 1)[1] if len(words) > 1 else ""
    chain: list[Payload] = []
    while _subcommands(node):
        name, _, remainder = rest.strip().partition(" ")
        chosen = next((o for o in _subcommands(node) if o["name"] == name), None)
        if chosen is None:
            options = ", ".join(o["name"] for o in _subcommands(node))
            raise SlashInputError(f"/{' '.join(path)} needs one of: {options}")
        path.append(name)
        chain.append(chosen)
        node = chosen
        rest = remainder

    sent: list[Payload] = _typed_options(node, rest, focused=focused)
    for level in reversed(chain):
        sent = [{"type": level["type"], "name": level["name"], "options": sent}]
    data: Payload = {
        "id": command["id"],
        "name": command["name"],
        "type": command.get("type", 1),
        "options": sent,
    }
    return SlashInvocation(command=command, data=data, path=" ".join(path))


def _subcommands(node: Payload) -> list[Payload]:
    return [
        option
        for option in node.get("options", [])
        if option["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)
    ]


def _typed_options(node: Payload, text: str, *, focused: str | None) -> list[Payload]:
    declared = {option["name"]: option for option in node.get("options", [])}
    raw = _split_options(text, list(declared), where=node["name"])

    sent: list[Payload] = []
    for name, value in raw.items():
        option = declared[name]
        if name == focused:
            sent.append(
                {"type": option["type"], "name": name, "value": value, "focused": True}
            )
            continue
        sent.append(
            {"type": option["type"], "name": name, "value": _typed(option, value)}
        )

    for option in declared.values():
        missing = option.get("required") and option["name"] not in raw
        if missing and focused is None:
            raise SlashInputError(f"option {option['name']} is required")
    return sent


def _split_options(text: str, names: list[str], *, where: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        return {}
    if not names:
        raise SlashInputError(f"{where} takes no options, got {text!r}")
    pattern = re.compile(r"(?:^|\s)(" + "|".join(map(re.escape, names)) + r"):")
    matches = list(pattern.finditer(text))
    if not matches or text[: matches[0].start()].strip():
        raise SlashInputError(
            f"expected options as name:value ({', '.join(names)}), got {text!r}"
        )
    values: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        name = match.group(1)
        if name in values:
            raise SlashInputError(f"option {name} is given twice")
        values[name] = text[match.end() : end].strip()
    return values


def _typed(option: Payload, value: str) -> Any:
    kind = option["type"]
    name = option["name"]
    if value == "":
        raise SlashInputError(f"option {name} needs a value")
    if kind == STRING:
        typed: Any = value
        _check_length(option, value)
    elif kind == INTEGER:
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise SlashInputError(f"option {name} must be {_TYPE_NAMES[kind]}")
        typed = int(value)
        if abs(typed) > MAX_SAFE_INTEGER:
            raise SlashInputError(f"option {name} is too large")
        _check_range(option, typed)
    elif kind == NUMBER:
        try:
            typed = float(value)
        except ValueError:
            raise SlashInputError(
                f"option {name} must be {_TYPE_NAMES[kind]}"
            ) from None
        _check_range(option, typed)
    elif kind == BOOLEAN:
        if value.lower() not in {"true", "false"}:
            raise SlashInputError(f"option {name} must be true or false")
        typed = value.lower() == "true"
    else:
        raise SlashInputError(
            f"option {name} has type {kind}, which the local gateway cannot type in"
        )
    return _check_choice(option, typed)


def _check_length(option: Payload, value: str) -> None:
    low, high = option.get("min_length"), option.get("max_length")
    if low is not None and len(value) < low:
        raise SlashInputError(
            f"option {option['name']} needs at least {low} characters"
        )
    if high is not None and len(value) > high:
        raise SlashInputError(
            f"option {option['name']} takes at most {high} characters"
        )


def _check_range(option: Payload, value: float) -> None:
    low, high = option.get("min_value"), option.get("max_value")
    if low is not None and value < low:
        raise SlashInputError(f"option {option['name']} must be at least {low}")
    if high is not None and value > high:
        raise SlashInputError(f"option {option['name']} must be at most {high}")


def _check_choice(option: Payload, value: Any) -> Any:
    choices = option.get("choices")
    if not choices:
        return value
    for choice in choices:
        if value in (choice["value"], choice["name"]):
            return choice["value"]
    allowed = ", ".join(str(choice["name"]) for choice in choices)
    raise SlashInputError(f"option {option['name']} must be one of: {allowed}")
