"""Configuration shared by every component, read from the environment or `.env`.

The variables and their defaults are the contract in DESIGN.md. A malformed value
raises :class:`SettingsError`, whose message names the variable, says what was
wrong with it and gives an example of a good value. Secrets are kept as
:class:`pydantic.SecretStr` so they never show up in a ``repr`` or a log line.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,245}$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")

_EXAMPLES = {
    "kafka_bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9093",
    "favorites_topic": "user-favorites",
    "consumer_group": "favorites-store",
    "database_url": "sqlite:///data/favorites.db",
    "backend_url": "http://127.0.0.1:8000",
    "api_token": "a random string of 16 or more characters",
    "discord_token": "the bot token from Discord's developer portal",
    "favorites_topic_partitions": "3",
    "publish_timeout_seconds": "5",
}


class SettingsError(ValueError):
    """A configuration variable holds a value the pipeline cannot use."""


class Settings(BaseSettings):
    """Every configuration variable of the pipeline.

    Attributes mirror the environment variables of DESIGN.md, lower-cased.
    ``kafka_bootstrap_servers`` is ``None`` when unset: the stack commands then start
    the embedded broker, and everything else uses :data:`DEFAULT_BOOTSTRAP`.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    kafka_bootstrap_servers: str | None = None
    favorites_topic: str = "user-favorites"
    consumer_group: str = "favorites-store"
    database_url: str = "sqlite:///data/favorites.db"
    backend_url: str = "http://127.0.0.1:8000"
    api_token: SecretStr | None = None
    discord_token: SecretStr | None = None
    #: Partitions of the favourites topic (and its dead-letter topic) when created.
    favorites_topic_partitions: int = Field(default=3, ge=1, le=1000)
    #: How long the backend waits for the broker to acknowledge one publish.
    publish_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None:
            return None
        hosts = [part.strip() for part in value.split(",")]
        for host in hosts:
            match = _HOSTPORT_RE.match(host)
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{host!r} is not host:port")
        return ",".join(hosts)

    @field_validator("favorites_topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        if not _TOPIC_RE.match(value) or value in {".", ".."}:
            raise ValueError(
                "a Kafka topic name is 1 to 245 letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("consumer_group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if not _GROUP_RE.match(value):
            raise ValueError("a group id is 1 to 255 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value.startswith("sqlite:"):
            path = value.removeprefix("sqlite:///")
            if path == value or path in {"", ":memory:"}:
                raise ValueError(
                    "an SQLite URL must name a file, as sqlite:///path/to/file.db; an"
                    " in-memory database would not be shared by the backend and the"
                    " consumer"
                )
            return value
        if value.startswith(("postgresql://", "postgresql+")):
            if not _postgres_driver_installed(value):
                raise ValueError(
                    "a PostgreSQL URL needs its driver: pip install 'psycopg[binary]'"
                    " (or psycopg2-binary for postgresql+psycopg2://)"
                )
            return value
        raise ValueError("only sqlite:/// and postgresql:// URLs are supported")

    @field_validator("backend_url")
    @classmethod
    def _check_backend_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/.*)?$", value):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_token")
    @classmethod
    def _check_api_token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and 0 < len(value.get_secret_value()) < 16:
            raise ValueError("the token is shorter than 16 characters")
        return value

    @field_validator("api_token", "discord_token")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        secret = value.get_secret_value()
        if secret.strip() != secret or any(ch.isspace() for ch in secret):
            raise ValueError("the token contains white space")
        if secret.lower() in {"changeme", "changethis", "secret", "token", "xxx"}:
            raise ValueError("the token is a placeholder; set a real one")
        return value

    @property
    def dead_letter_topic(self) -> str:
        """The dead-letter topic that goes with :attr:`favorites_topic`."""
        return f"{self.favorites_topic}.dlq"

    @property
    def bootstrap_or_default(self) -> str:
        """The bootstrap servers to use when no embedded broker is started."""
        return self.kafka_bootstrap_servers or DEFAULT_BOOTSTRAP


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into a :class:`SettingsError`.

    Args:
        **overrides: values that take precedence over the environment (field names).

    Raises:
        SettingsError: a variable is malformed; the message names it.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except UnicodeDecodeError:
        raise SettingsError(
            "the .env file in the working directory is not UTF-8 text; save it as"
            " UTF-8 or remove it"
        ) from None


def _postgres_driver_installed(url: str) -> bool:
    scheme = url.split("://", 1)[0]
    driver = scheme.split("+", 1)[1] if "+" in scheme else "psycopg2"
    modules = {"psycopg": "psycopg", "psycopg2": "psycopg2", "asyncpg": "asyncpg"}
    module = modules.get(driver, driver)
    return importlib.util.find_spec(module) is not None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else "settings"
        reason = str(error["msg"]).removeprefix("Value error, ")
        example = _EXAMPLES.get(field, "")
        hint = f" (for example {example})" if example else ""
        lines.append(f"{field.upper()} is invalid: {reason}{hint}")
    return "; ".join(lines)
