"""Regenerate pipeline_core/broker/kafka-jars.lock.json with Maven (maintainers only).

Resolves Apache Kafka's broker and a log4j2 backend with `mvn dependency:list`, then
records every runtime jar's coordinates, size and SHA-256 from the local Maven
repository. Users never run this: the embedded broker reads the committed lock.

Usage: python scripts/lock_kafka_jars.py [KAFKA_VERSION]
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

LOG4J_VERSION = "2.24.3"
LOCK = Path(__file__).resolve().parents[1] / "pipeline_core/broker/kafka-jars.lock.json"

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
<modelVersion>4.0.0</modelVersion>
<groupId>local.recipe-pipeline</groupId><artifactId>kafka-lock</artifactId>
<version>1</version>
<dependencies>
<dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
<version>{kafka}</version></dependency>
<dependency><groupId>org.apache.logging.log4j</groupId>
<artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
<dependency><groupId>org.apache.logging.log4j</groupId>
<artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
</dependencies></project>
"""


def main() -> None:
    kafka = sys.argv[1] if len(sys.argv) > 1 else "4.1.1"
    m2 = Path.home() / ".m2/repository"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(POM.format(kafka=kafka, log4j=LOG4J_VERSION))
        listing = Path(tmp) / "deps.txt"
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "dependency:list",
                "-DincludeScope=runtime",
                f"-DoutputFile={listing}",
                "-DoutputAbsoluteArtifactFilename=false",
            ],
            cwd=tmp,
            check=True,
        )
        lines = listing.read_text().splitlines()
    jars = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) < 5 or parts[2] != "jar":
            continue
        group, artifact, _kind, version = parts[:4]
        path = (
            m2
            / group.replace(".", "/")
            / artifact
            / version
            / f"{artifact}-{version}.jar"
        )
        data = path.read_bytes()
        jars.append(
            {
                "group": group,
                "artifact": artifact,
                "version": version,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    jars.sort(key=lambda jar: (jar["group"], jar["artifact"]))
    lock = {"kafka_version": kafka, "scala_version": "2.13", "jars": jars}
    LOCK.write_text(json.dumps(lock, indent=2) + "\n")
    sys.stdout.write(f"wrote {LOCK} with {len(jars)} jars\n")


if __name__ == "__main__":
    main()
