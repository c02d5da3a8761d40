"""Gateway and REST payloads shaped the way Discord sends them (API v10).

The local gateway builds every object the bot sees from these functions, so the
shapes live in one place. They carry the keys discord.py 2.7 reads; when an upgrade
starts reading a new key, ``tests/pipeline_core/test_gateway*.py`` fail loudly.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

#: Discord's epoch (2015-01-01T00:00:00Z) in milliseconds, the base of snowflakes.
DISCORD_EPOCH_MS = 1_420_070_400_000

#: Permissions the local guild's @everyone role grants: view, send, read history,
#: embed links, use application commands.
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 16) | (1 << 14) | (1 << 31)

#: The upload limit discord.py 2.7 reads from every interaction payload.
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

Payload = dict[str, Any]


class SnowflakeFactory:
    """Makes unique, time-ordered snowflake ids for one gateway run."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next_id(self) -> int:
        """A fresh snowflake for the current time."""
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (millis << 22) | (next(self._counter) & 0xFFF)


def iso_now() -> str:
    """The current UTC time in Discord's ISO 8601 form."""
    return datetime.now(UTC).isoformat()


def user_payload(user_id: int, name: str, *, bot: bool = False) -> Payload:
    """A user object; ``name`` is both the username and the display (global) name."""
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member_payload(joined_at: str, user: Payload | None = None) -> Payload:
    """A guild member object; with ``user`` it is the form used in member lists."""
    member: Payload = {
        "roles": [],
        "joined_at": joined_at,
        "nick": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
    }
    if user is not None:
        member["user"] = user
    return member


def channel_payload(channel_id: int, guild_id: int, name: str) -> Payload:
    """A guild text channel."""
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def guild_payload(
    guild_id: int, name: str, channel: Payload, bot_member: Payload, owner_id: int
) -> Payload:
    """A GUILD_CREATE payload: one text channel, the bot as its only cached member.

    ``member_count`` equals the cached members so discord.py considers the guild
    chunked and never asks the (absent) websocket for members.
    """
    everyone = {
        "id": str(guild_id),
        "name": "@everyone",
        "permissions": str(EVERYONE_PERMISSIONS),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": str(guild_id),
        "name": name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [everyone],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "banner": None,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "joined_at": bot_member["joined_at"],
        "large": False,
        "unavailable": False,
        "member_count": 1,
        "members": [bot_member],
        "channels": [channel],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
    }


def ready_payload(bot_user: Payload, guild_id: int, application_id: int) -> Payload:
    """A READY payload announcing one (not yet available) guild."""
    return {
        "v": 10,
        "user": bot_user,
        "guilds": [{"id": str(guild_id), "unavailable": True}],
        "session_id": "local-gateway",
        "resume_gateway_url": "",
        "application": {"id": str(application_id), "flags": 0},
        "private_channels": [],
        "relationships": [],
    }


def application_payload(application_id: int, name: str, owner: Payload) -> Payload:
    """The bot's application, as ``GET /oauth2/applications/@me`` answers."""
    return {
        "id": str(application_id),
        "name": name,
        "description": "recipe-pipeline bot on the local gateway",
        "icon": None,
        "bot_public": False,
        "bot_require_code_grant": False,
        "owner": owner,
        "verify_key": "0" * 64,
        "flags": 0,
    }


def message_payload(
    message_id: int,
    channel_id: int,
    guild_id: int | None,
    author: Payload,
    content: str,
    *,
    member: Payload | None = None,
    embeds: list[Payload] | None = None,
    flags: int = 0,
    webhook_id: int | None = None,
) -> Payload:
    """A message object, as in MESSAGE_CREATE or a REST answer."""
    message: Payload = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds or [],
        "pinned": False,
        "type": 0,
        "flags": flags,
        "components": [],
    }
    if guild_id is not None:
        message["guild_id"] = str(guild_id)
    if member is not None:
        message["member"] = member
    if webhook_id is not None:
        message["webhook_id"] = str(webhook_id)
    return message


def interaction_payload(
    *,
    interaction_id: int,
    interaction_type: int,
    application_id: int,
    token: str,
    guild_id: int,
    channel: Payload,
    member: Payload,
    data: Payload,
) -> Payload:
    """An INTERACTION_CREATE payload from a guild member.

    ``interaction_type`` is 2 for a command, 4 for autocomplete.
    """
    return {
        "id": str(interaction_id),
        "application_id": str(application_id),
        "type": interaction_type,
        "data": data,
        "guild_id": str(guild_id),
        "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
        "channel_id": channel["id"],
        "channel": channel,
        "member": {**member, "permissions": str(EVERYONE_PERMISSIONS)},
        "token": token,
        "version": 1,
        "app_permissions": str(EVERYONE_PERMISSIONS),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild_id)},
        "context": 0,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
