"""The recipe-pipeline pytest plugin: a real broker, a running pipeline, the real bot.

Installed with the package (entry point ``pytest11``), so any suite in the same
environment can ask for these fixtures:

``kafka_broker`` (session)
    A :class:`~pipeline_core.broker.source.BrokerLease`: ``KAFKA_BOOTSTRAP_SERVERS``
    if set, else testcontainers' Kafka where a Docker engine answers, else the
    embedded broker. When none works the test fails with a message naming the three
    ways; it never skips.
``kafka_bootstrap`` (session)
    The lease's bootstrap address, ``host:port``.
``pipeline`` (module)
    A :class:`~recipe_pipeline.harness.PipelineUnderTest`: the real backend and
    consumer as processes on the session's broker, with a topic, group and SQLite
    database of the test module's own. With ``--pipeline-attach=READY_FILE`` (the
    ready file of ``recipe-pipeline up``) it drives that running stack instead;
    ``FAVORITES_TOPIC`` and ``CONSUMER_GROUP`` then come from the environment, as
    the stack was started with them, and ``API_TOKEN`` too unless the ready file
    names an ``api_token_file``.
``pipeline_bot`` (function)
    A :class:`~pipeline_core.gateway.LocalGateway` running the real bot, wired to
    the ``pipeline``'s backend: ``await pipeline_bot.send("/favorite add recipe:12",
    user_id="42", user_name="Ada")``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

if TYPE_CHECKING:
    from pipeline_core.broker.source import BrokerLease
    from pipeline_core.gateway import LocalGateway
    from recipe_pipeline.harness import PipelineAddresses, PipelineUnderTest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--pipeline-attach``."""
    group = parser.getgroup("recipe-pipeline")
    group.addoption(
        "--pipeline-attach",
        metavar="READY_FILE",
        default=None,
        help="drive the running stack whose `recipe-pipeline up --ready-file` this"
        " is, instead of starting one per test module",
    )


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerLease]:
    """A real Kafka broker for the whole test session."""
    from pipeline_core.broker.source import BrokerUnavailable, provide_broker

    lease_context = provide_broker()
    try:
        lease = lease_context.__enter__()
    except BrokerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield lease
    finally:
        lease_context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: BrokerLease) -> str:
    """The bootstrap address of the session's Kafka broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="module")
def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipelineUnderTest]:
    """The real pipeline, with a topic, group and database of this module's own."""
    from recipe_pipeline.harness import HostedStack, PipelineUnderTest

    attach = request.config.getoption("--pipeline-attach")
    if attach:
        under_test = PipelineUnderTest(_attached_addresses(Path(attach)))
        try:
            yield under_test
        finally:
            under_test.close()
        return

    from pipeline_core.stack.stack import StackConfig

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    slug = _slug(request.module.__name__)
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp(f"pipeline-{slug[:20]}"),
        topic=f"favorites-{slug}",
        group=f"store-{slug}",
        bootstrap=bootstrap,
    )
    host = HostedStack(config)
    try:
        addresses = host.start()
        under_test = PipelineUnderTest(addresses, host=host)
        yield under_test
        under_test.close()
    finally:
        host.stop()


@pytest.fixture
async def pipeline_bot(pipeline: PipelineUnderTest) -> AsyncIterator[LocalGateway]:
    """The real bot on the local gateway, talking to ``pipeline``'s backend."""
    from bot.app import build_bot
    from pipeline_core.gateway import LocalGateway
    from pipeline_core.settings import load_settings

    settings = load_settings(
        backend_url=pipeline.backend_url,
        api_token=pipeline.addresses.api_token.get_secret_value(),
        discord_token=None,
    )
    async with LocalGateway(build_bot(settings)) as gateway:
        yield gateway


def _slug(module_name: str) -> str:
    tail = re.sub(r"[^a-z0-9]+", "-", module_name.lower().rsplit(".", 1)[-1])
    return f"{tail.strip('-')[:40]}-{uuid.uuid4().hex[:8]}"


def _attached_addresses(ready_file: Path) -> PipelineAddresses:
    from pipeline_core.settings import load_settings
    from recipe_pipeline.harness import PipelineAddresses

    try:
        ready = json.loads(ready_file.read_text())
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(
            f"--pipeline-attach {ready_file}: cannot read the ready file ({exc})"
        ) from None
    settings = load_settings()
    token = settings.api_token
    if token is None and "api_token_file" in ready:
        token = SecretStr(Path(ready["api_token_file"]).read_text().strip())
    if token is None:
        raise pytest.UsageError(
            "--pipeline-attach needs API_TOKEN set to the token the stack runs with"
            " (or an api_token_file in the ready file)"
        )
    missing = {"kafka_bootstrap", "backend_url", "database_url"} - set(ready)
    if missing:
        raise pytest.UsageError(
            f"--pipeline-attach {ready_file}: the ready file lacks {sorted(missing)}"
        )
    return PipelineAddresses(
        kafka_bootstrap=ready["kafka_bootstrap"],
        backend_url=ready["backend_url"],
        database_url=ready["database_url"],
        topic=settings.favorites_topic,
        group=settings.consumer_group,
        api_token=token,
    )
