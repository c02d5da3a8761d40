"""The Apache Kafka jars the embedded broker runs, fetched once and verified.

The exact jars and their SHA-256 sums are pinned in ``kafka-jars.lock.json`` (made
with ``scripts/lock_kafka_jars.py``). :func:`ensure_kafka_jars` fills a user cache
folder with them, trying in order, and stops at the first that completes the set:

1. the cache itself (``RECIPE_PIPELINE_CACHE``, default ``~/.cache/recipe-pipeline``);
2. ``KAFKA_JARS_DIR``, a folder the user filled (for example from Kafka's tarball);
3. the local Maven repository (``~/.m2/repository``), no network needed;
4. ``KAFKA_MAVEN_REPOSITORY``, the base URL of a Maven repository (Maven Central or a
   mirror): plain HTTPS downloads, no Maven needed;
5. the ``mvn`` command, which resolves the same coordinates from the repositories it
   is configured with.

Every jar is checked against its pinned size and SHA-256 before it is used; a jar
that does not match is deleted and reported, never run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)

#: Progress callback: (jars done, jars in all, bytes of the jar being fetched or 0).
Progress = Callable[[int, int, str], None]

DOWNLOAD_TIMEOUT_S = 60.0
DOWNLOAD_ATTEMPTS = 3
MAVEN_TIMEOUT_S = 600.0


class KafkaJarsError(RuntimeError):
    """The Kafka jars could not be put together and verified."""


@dataclass(frozen=True)
class PinnedJar:
    """One jar of the lock: Maven coordinates, size and SHA-256."""

    group: str
    artifact: str
    version: str
    size: int
    sha256: str

    @property
    def file_name(self) -> str:
        """The jar's file name, as Maven names it."""
        return f"{self.artifact}-{self.version}.jar"

    @property
    def repository_path(self) -> str:
        """The jar's path inside a Maven repository layout."""
        group_path = self.group.replace(".", "/")
        return f"{group_path}/{self.artifact}/{self.version}/{self.file_name}"

    @property
    def coordinates(self) -> str:
        """``group:artifact:version``."""
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class KafkaLock:
    """The pinned Kafka release and every jar it runs with."""

    kafka_version: str
    jars: tuple[PinnedJar, ...]

    @property
    def total_bytes(self) -> int:
        """The size of all jars together."""
        return sum(jar.size for jar in self.jars)


def load_lock() -> KafkaLock:
    """Read the committed lock shipped with the package."""
    text = resources.files(__package__).joinpath("kafka-jars.lock.json").read_text()
    raw = json.loads(text)
    jars = tuple(PinnedJar(**jar) for jar in raw["jars"])
    return KafkaLock(kafka_version=raw["kafka_version"], jars=jars)


def cache_root() -> Path:
    """The user cache folder of the project."""
    configured = os.environ.get("RECIPE_PIPELINE_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recipe-pipeline"


def jars_folder(lock: KafkaLock) -> Path:
    """The cache folder that holds the jars of ``lock``."""
    return cache_root() / "kafka" / lock.kafka_version / "libs"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_valid(path: Path, jar: PinnedJar) -> bool:
    return (
        path.is_file()
        and path.stat().st_size == jar.size
        and _sha256(path) == jar.sha256
    )


def _install(source: Path, jar: PinnedJar, folder: Path) -> bool:
    """Copy ``source`` into ``folder`` if it is the pinned jar; report a mismatch."""
    if not source.is_file():
        return False
    if not _is_valid(source, jar):
        logger.warning(
            "kafka jar %s at %s does not match its pinned SHA-256; ignoring it",
            jar.coordinates,
            source,
        )
        return False
    tmp = folder / f".{jar.file_name}.part"
    shutil.copyfile(source, tmp)
    tmp.replace(folder / jar.file_name)
    return True


def _missing(lock: KafkaLock, folder: Path) -> list[PinnedJar]:
    return [jar for jar in lock.jars if not (folder / jar.file_name).is_file()]


def ensure_kafka_jars(
    lock: KafkaLock | None = None, progress: Progress | None = None
) -> list[Path]:
    """Make sure every pinned jar is in the cache, verified; return their paths.

    Args:
        lock: the jars to provide; the committed lock when ``None``.
        progress: called after each jar with (done, total, jar name).

    Raises:
        KafkaJarsError: a jar could not be found or fetched, or failed verification;
            the message says which ways were tried and what to do.
    """
    lock = lock or load_lock()
    folder = jars_folder(lock)
    folder.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _done, _total, _name: None)

    # One process checks and fills the cache at a time; the others wait for it.
    with (folder.parent / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            return _fill(lock, folder, report)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _fill(lock: KafkaLock, folder: Path, report: Progress) -> list[Path]:
    total = len(lock.jars)
    # Every start checks every jar (about 0.1 s for Kafka's 44 MB): a jar changed
    # in the cache after it was fetched is never run.
    for jar in lock.jars:
        cached = folder / jar.file_name
        if cached.is_file() and not _is_valid(cached, jar):
            logger.warning("cached kafka jar %s is corrupt; fetching it again", cached)
            cached.unlink()

    _fill_from_folders(lock, folder)
    if _missing(lock, folder):
        _fill_from_repository_url(lock, folder, report)
    if _missing(lock, folder):
        _fill_with_maven(lock, folder, report)

    missing = _missing(lock, folder)
    if missing:
        names = ", ".join(jar.file_name for jar in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise KafkaJarsError(
            f"could not get the Apache Kafka {lock.kafka_version} jars ({names}{more}):"
            " set KAFKA_MAVEN_REPOSITORY to a Maven repository URL (Maven Central or a"
            " mirror), or install Maven (mvn), or put the jars in a folder named by"
            " KAFKA_JARS_DIR, or set KAFKA_BOOTSTRAP_SERVERS to use a running Kafka"
        )
    report(total, total, "verified")
    return [folder / jar.file_name for jar in lock.jars]


def _fill_from_folders(lock: KafkaLock, folder: Path) -> None:
    user_dir = os.environ.get("KAFKA_JARS_DIR")
    m2 = Path(os.environ.get("MAVEN_REPOSITORY", str(Path.home() / ".m2/repository")))
    for jar in _missing(lock, folder):
        if user_dir and _install(Path(user_dir) / jar.file_name, jar, folder):
            continue
        _install(m2 / jar.repository_path, jar, folder)


def _fill_from_repository_url(lock: KafkaLock, folder: Path, report: Progress) -> None:
    base = os.environ.get("KAFKA_MAVEN_REPOSITORY", "").rstrip("/")
    if not base:
        return
    if not base.startswith(("https://", "http://")):
        raise KafkaJarsError(
            f"KAFKA_MAVEN_REPOSITORY must be an http(s) URL, got {base!r}"
        )
    done = len(lock.jars) - len(_missing(lock, folder))
    for jar in _missing(lock, folder):
        _download(f"{base}/{jar.repository_path}", jar, folder)
        done += 1
        report(done, len(lock.jars), jar.file_name)


def _download(url: str, jar: PinnedJar, folder: Path) -> None:
    last_error = ""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        tmp = folder / f".{jar.file_name}.download"
        try:
            with (
                httpx.stream(
                    "GET", url, timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True
                ) as response,
                tmp.open("wb") as out,
            ):
                response.raise_for_status()
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        except (httpx.HTTPError, OSError) as exc:
            last_error = str(exc)
            logger.warning(
                "download of %s failed (attempt %s of %s): %s",
                jar.file_name,
                attempt,
                DOWNLOAD_ATTEMPTS,
                exc,
            )
            continue
        if _is_valid(tmp, jar):
            tmp.replace(folder / jar.file_name)
            return
        tmp.unlink(missing_ok=True)
        raise KafkaJarsError(
            f"{jar.file_name} downloaded from the repository in KAFKA_MAVEN_REPOSITORY"
            " does not match its pinned SHA-256; refusing to run it (check that the"
            " URL points at Maven Central or a faithful mirror)"
        )
    raise KafkaJarsError(
        f"could not download {jar.file_name} after {DOWNLOAD_ATTEMPTS} attempts"
        f" ({last_error}); check KAFKA_MAVEN_REPOSITORY and the network"
    )


def _fill_with_maven(lock: KafkaLock, folder: Path, report: Progress) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        return
    missing = _missing(lock, folder)
    report(len(lock.jars) - len(missing), len(lock.jars), "resolving with Maven")
    deps = "".join(
        f"<dependency><groupId>{jar.group}</groupId><artifactId>{jar.artifact}"
        f"</artifactId><version>{jar.version}</version>"
        "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId>"
        "</exclusion></exclusions></dependency>"
        for jar in missing
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
        "</modelVersion><groupId>local.recipe-pipeline</groupId>"
        "<artifactId>kafka-fetch</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory(prefix="recipe-pipeline-mvn-") as tmp:
        Path(tmp, "pom.xml").write_text(pom)
        out = Path(tmp, "jars")
        try:
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={out}",
                ],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            logger.warning("mvn did not finish within %ss", MAVEN_TIMEOUT_S)
            return
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            logger.warning("mvn could not resolve the kafka jars: %s", " | ".join(tail))
            return
        done = len(lock.jars) - len(missing)
        for jar in missing:
            if _install(out / jar.file_name, jar, folder):
                done += 1
                report(done, len(lock.jars), jar.file_name)
