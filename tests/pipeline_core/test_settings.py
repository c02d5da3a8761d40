"""Settings: the DESIGN.md defaults, and malformed values named by their variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_core.settings import SettingsError, load_settings

_VARIABLES = [
    "KAFKA_BOOTSTRAP_SERVERS",
    "FAVORITES_TOPIC",
    "CONSUMER_GROUP",
    "DATABASE_URL",
    "BACKEND_URL",
    "API_TOKEN",
    "DISCORD_TOKEN",
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_defaults_are_the_design_defaults() -> None:
    """With nothing set, every variable has its DESIGN.md default."""
    settings = load_settings()

    assert settings.kafka_bootstrap_servers is None
    assert settings.bootstrap_or_default == "127.0.0.1:9092"
    assert settings.favorites_topic == "user-favorites"
    assert settings.dead_letter_topic == "user-favorites.dlq"
    assert settings.consumer_group == "favorites-store"
    assert settings.database_url == "sqlite:///data/favorites.db"
    assert settings.backend_url == "http://127.0.0.1:8000"
    assert settings.api_token is None
    assert settings.discord_token is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:99999"),
        ("FAVORITES_TOPIC", "user favorites"),
        ("FAVORITES_TOPIC", ".."),
        ("CONSUMER_GROUP", "group/with/slashes"),
        ("DATABASE_URL", "mysql://db/favorites"),
        ("BACKEND_URL", "127.0.0.1:8000"),
        ("DATABASE_URL", "sqlite://"),
        ("DATABASE_URL", "sqlite:///:memory:"),
        ("API_TOKEN", "short-token"),
        ("API_TOKEN", "changeme"),
        ("API_TOKEN", "has white space"),
    ],
)
def test_malformed_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A malformed value raises SettingsError whose message names the variable."""
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert f"{variable} is invalid" in str(caught.value)


def test_secret_never_appears_in_errors_or_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token stays out of repr() and out of another variable's error message."""
    monkeypatch.setenv("API_TOKEN", "s3cr3t-token-value-123")
    assert "s3cr3t" not in repr(load_settings())

    monkeypatch.setenv("FAVORITES_TOPIC", "bad topic")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "s3cr3t" not in str(caught.value)


def test_bootstrap_list_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    """A comma list with spaces becomes a clean comma list."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "a:9092, b:9093")

    assert load_settings().kafka_bootstrap_servers == "a:9092,b:9093"


def test_env_file_is_read() -> None:
    """A `.env` file in the working directory provides values."""
    with open(".env", "w", encoding="utf-8") as handle:
        handle.write("FAVORITES_TOPIC=from-dotenv\n")

    assert load_settings().favorites_topic == "from-dotenv"


def test_cli_reports_bad_configuration_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recipe-pipeline lag` with a malformed variable exits 2 naming it."""
    from recipe_pipeline.cli import main

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "not-an-address")

    code = main(["lag"])

    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "KAFKA_BOOTSTRAP_SERVERS is invalid" in err[0]


def test_postgres_url_without_its_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PostgreSQL URL whose driver is not installed names the package to install."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+nosuchdriver://db.example/app")

    with pytest.raises(SettingsError, match="pip install"):
        load_settings()


def test_env_file_that_is_not_utf8_gives_one_clear_error() -> None:
    """A .env file with bytes that are not UTF-8 is reported as such."""
    with open(".env", "wb") as handle:
        handle.write(b"FAVORITES_TOPIC=caf\xe9\n")

    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings()
