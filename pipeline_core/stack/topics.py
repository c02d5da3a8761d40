"""Make sure the interactions topic and its dead-letter topic exist."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

#: How often the topic metadata is read while new topics settle.
METADATA_POLL_S = 0.1


class TopicSetupError(RuntimeError):
    """The topics could not be created or checked; the message says why."""


async def ensure_topics(
    bootstrap: str,
    names: Sequence[str],
    *,
    partitions: int,
    timeout: float,
) -> None:
    """Create the topics in ``names`` that do not exist yet (replication factor 1).

    Topics that already exist are kept as they are, whatever their partition count.
    Returns once the broker's metadata shows every topic with its partitions, so a
    producer started next finds them.

    Args:
        bootstrap: the Kafka bootstrap servers.
        names: topic names.
        partitions: partitions of each topic created here.
        timeout: seconds for the whole job.

    Raises:
        TopicSetupError: the broker did not answer in time or refused a topic.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in names if name not in existing]
            if missing:
                new = [NewTopic(name, partitions, 1) for name in missing]
                response = await admin.create_topics(new)
                for name, code, *_rest in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise TopicSetupError(
                            f"Kafka at {bootstrap} refused to create topic {name!r}"
                            f" (error code {code}); check the broker's log"
                        )
                logger.info("created topics %s with %d partitions", missing, partitions)
            await _until_described(admin, names)
    except TimeoutError:
        raise TopicSetupError(
            f"Kafka at {bootstrap} did not answer within {timeout:g} s while the"
            " topics were set up; is the broker running?"
        ) from None
    except KafkaError as exc:
        raise TopicSetupError(
            f"setting up topics on Kafka at {bootstrap} failed: {exc}"
        ) from exc
    finally:
        await admin.close()


async def _until_described(admin: Any, names: Sequence[str]) -> None:
    """Wait until every topic in ``names`` has partitions in the metadata."""
    while True:
        described = await admin.describe_topics(list(names))
        if all(entry["error_code"] == 0 and entry["partitions"] for entry in described):
            return
        await asyncio.sleep(METADATA_POLL_S)
