"""The Kafka jar cache: pinned checksums decide what runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline_core.broker.jars import (
    KafkaJarsError,
    KafkaLock,
    PinnedJar,
    ensure_kafka_jars,
    jars_folder,
    load_lock,
)


def _lock_for(content: bytes) -> KafkaLock:
    jar = PinnedJar(
        group="org.example",
        artifact="demo",
        version="1.0",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    return KafkaLock(kafka_version="0.0-test", jars=(jar,))


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache, Maven repository and PATH of this test only (no mvn, no network)."""
    monkeypatch.setenv("RECIPE_PIPELINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MAVEN_REPOSITORY", str(tmp_path / "m2"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("KAFKA_MAVEN_REPOSITORY", raising=False)
    monkeypatch.delenv("KAFKA_JARS_DIR", raising=False)
    return tmp_path


def test_committed_lock_pins_kafka_4() -> None:
    """The shipped lock pins one Kafka 4.x release, the broker jar among its jars."""
    lock = load_lock()

    assert lock.kafka_version.startswith("4.")
    assert any(jar.artifact == "kafka_2.13" for jar in lock.jars)
    assert all(len(jar.sha256) == 64 for jar in lock.jars)


def test_jar_from_kafka_jars_dir_is_verified_and_cached(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A jar whose checksum matches is copied from KAFKA_JARS_DIR into the cache."""
    content = b"real jar bytes"
    source = isolated / "jars"
    source.mkdir()
    (source / "demo-1.0.jar").write_bytes(content)
    monkeypatch.setenv("KAFKA_JARS_DIR", str(source))
    lock = _lock_for(content)

    paths = ensure_kafka_jars(lock)

    assert paths == [jars_folder(lock) / "demo-1.0.jar"]
    assert paths[0].read_bytes() == content


def test_tampered_jar_is_refused_with_the_ways_out(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A jar whose checksum differs is never used; the error names every source."""
    source = isolated / "jars"
    source.mkdir()
    (source / "demo-1.0.jar").write_bytes(b"tampered bytes")
    monkeypatch.setenv("KAFKA_JARS_DIR", str(source))
    lock = _lock_for(b"real jar bytes")

    with pytest.raises(KafkaJarsError) as caught:
        ensure_kafka_jars(lock)

    message = str(caught.value)
    for way in ("KAFKA_MAVEN_REPOSITORY", "mvn", "KAFKA_JARS_DIR", "KAFKA_BOOTSTRAP"):
        assert way in message
    assert not (jars_folder(lock) / "demo-1.0.jar").exists()


def test_corrupt_cached_jar_is_replaced(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached jar that was damaged after the fact is fetched again."""
    content = b"real jar bytes"
    lock = _lock_for(content)
    folder = jars_folder(lock)
    folder.mkdir(parents=True)
    (folder / "demo-1.0.jar").write_bytes(b"damaged")
    repository = isolated / "m2" / "org/example/demo/1.0"
    repository.mkdir(parents=True)
    (repository / "demo-1.0.jar").write_bytes(content)

    paths = ensure_kafka_jars(lock)

    assert paths[0].read_bytes() == content


def test_bad_repository_url_is_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KAFKA_MAVEN_REPOSITORY must be an http(s) URL."""
    monkeypatch.setenv("KAFKA_MAVEN_REPOSITORY", "file:///etc")

    with pytest.raises(KafkaJarsError, match="KAFKA_MAVEN_REPOSITORY"):
        ensure_kafka_jars(_lock_for(b"x"))


def test_jar_changed_in_the_cache_after_fetching_is_never_run(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached jar altered after a successful fetch is caught on the next call."""
    content = b"real jar bytes"
    source = isolated / "jars"
    source.mkdir()
    (source / "demo-1.0.jar").write_bytes(content)
    monkeypatch.setenv("KAFKA_JARS_DIR", str(source))
    lock = _lock_for(content)
    [cached] = ensure_kafka_jars(lock)
    (source / "demo-1.0.jar").unlink()

    cached.write_bytes(b"real jar bytez")

    with pytest.raises(KafkaJarsError):
        ensure_kafka_jars(lock)
    assert not cached.exists()
