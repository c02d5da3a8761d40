"""docker-compose.yml agrees with the settings and the pinned Kafka (no engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_core.broker.jars import load_lock
from pipeline_core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service["environment"].items()}


def _interpolate(value: str) -> str:
    """Resolve ${VAR:-default} and ${VAR:?msg} the way compose would with VAR unset."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "a-token-for-the-compose-test", value)


def test_services_are_the_pipeline(compose: dict[str, Any]) -> None:
    """Kafka, topic init, backend, consumer and bot, nothing else."""
    assert set(compose["services"]) == {
        "kafka", "kafka-init", "backend", "consumer", "bot",
    }  # fmt: skip


def test_kafka_image_is_the_pinned_version(compose: dict[str, Any]) -> None:
    """The official apache/kafka image at the embedded broker's version, in KRaft."""
    version = load_lock().kafka_version
    kafka = compose["services"]["kafka"]

    assert kafka["image"] == f"apache/kafka:{version}"
    assert compose["services"]["kafka-init"]["image"] == f"apache/kafka:{version}"
    assert _environment(kafka)["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka


@pytest.mark.parametrize("name", ["backend", "consumer", "bot"])
def test_component_environment_is_valid_settings(
    compose: dict[str, Any], name: str
) -> None:
    """Each component's variables are settings fields and pass their validation."""
    environment = {
        key: _interpolate(value)
        for key, value in _environment(compose["services"][name]).items()
    }
    fields = {field.upper() for field in Settings.model_fields}

    assert set(environment) <= fields
    settings = load_settings(
        **{key.lower(): value for key, value in environment.items() if value}
    )
    assert settings.favorites_topic == Settings.model_fields["favorites_topic"].default
    assert settings.consumer_group == Settings.model_fields["consumer_group"].default


def test_components_reach_kafka_on_its_internal_listener(
    compose: dict[str, Any],
) -> None:
    """KAFKA_BOOTSTRAP_SERVERS points at a listener the kafka service advertises."""
    advertised = _environment(compose["services"]["kafka"])[
        "KAFKA_ADVERTISED_LISTENERS"
    ]
    for name in ("backend", "consumer", "bot"):
        bootstrap = _environment(compose["services"][name])["KAFKA_BOOTSTRAP_SERVERS"]
        assert f"//{bootstrap}" in advertised


def test_bot_reaches_the_backend_service(compose: dict[str, Any]) -> None:
    """BACKEND_URL names the backend service on the port the backend binds."""
    services = compose["services"]
    command = services["backend"]["command"]
    port = command[command.index("--port") + 1]

    assert _environment(services["bot"])["BACKEND_URL"] == f"http://backend:{port}"


def test_topic_init_creates_the_topic_and_its_dead_letters(
    compose: dict[str, Any],
) -> None:
    """kafka-init creates FAVORITES_TOPIC and its .dlq with the settings' default."""
    init = compose["services"]["kafka-init"]
    script = " ".join(init["command"])

    assert _interpolate(init["environment"]["FAVORITES_TOPIC"]) == "user-favorites"
    assert '"$$FAVORITES_TOPIC" "$$FAVORITES_TOPIC.dlq"' in script
    assert "--create" in script


def test_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    """Every published port is bound to 127.0.0.1."""
    for service in compose["services"].values():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:")


def test_database_lives_on_a_named_volume(compose: dict[str, Any]) -> None:
    """Backend and consumer share the SQLite file on a named volume."""
    for name in ("backend", "consumer"):
        service = compose["services"][name]
        assert "favorites-data:/data" in service["volumes"]
        assert _environment(service)["DATABASE_URL"] == "sqlite:////data/favorites.db"
    assert "favorites-data" in compose["volumes"]


def test_components_use_real_subcommands(compose: dict[str, Any]) -> None:
    """Each component's command is a subcommand of recipe-pipeline."""
    from recipe_pipeline.cli import COMMANDS

    for name in ("backend", "consumer", "bot"):
        assert compose["services"][name]["command"][0] in COMMANDS
