"""Job-server jars for Beam's Flink and Spark runners, assembled with Maven.

Usage (what the engine tests do; the jars are cached in ~/.cache/bertpipe/job-servers):
    python tests/job_server_jars.py flink|spark

Beam publishes ready-made job-server jars (`beam-runners-flink-1.19-job-server`, ...) that
its FlinkRunner and SparkRunner download by themselves; the Maven mirror this project is
developed against does not serve those, but it serves the runner modules they are built
from. So this fetches a runner module and its dependencies with `mvn
dependency:copy-dependencies` and writes a small jar whose manifest names the job server's
main class and, as its class path, the fetched jars. `--flink_job_server_jar=` and
`--spark_job_server_jar=` take it like the published one.

The newest Beam release whose runner modules resolve there is RUNNER_VERSION; the Python
SDK (2.77) talks to it through the portability API, with its workers in LOOPBACK mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

RUNNER_VERSION = "2.62.0"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "bertpipe", "job-servers")

# engine -> (main class, Maven dependencies, JVM options the manifest carries)
ENGINES = {
    "flink": ("org.apache.beam.runners.flink.FlinkJobServerDriver",
              [("org.apache.beam", "beam-runners-flink-1.19", RUNNER_VERSION)], []),
    "spark": ("org.apache.beam.runners.spark.SparkJobServerDriver",
              [("org.apache.beam", "beam-runners-spark-3", RUNNER_VERSION),
               # Spark itself is a 'provided' dependency of the runner module.
               ("org.apache.spark", "spark-core_2.12", "3.2.2"),
               ("org.apache.spark", "spark-streaming_2.12", "3.2.2"),
               ("org.apache.spark", "spark-sql_2.12", "3.2.2"),
               ("org.apache.hadoop", "hadoop-client-api", "3.3.1"),
               ("org.apache.hadoop", "hadoop-client-runtime", "3.3.1"),
               ("com.esotericsoftware", "kryo-shaded", "4.0.2"),
               ("commons-io", "commons-io", "2.16.1")],
              # Spark 3.2 reaches into the JDK's internals, which Java 17 closes by default.
              ["java.base/" + p for p in (
                  "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net",
                  "java.nio", "java.util", "java.util.concurrent",
                  "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs",
                  "sun.security.action", "sun.util.calendar")]),
}


class Unavailable(Exception):
    """Java, Maven or the artifacts are missing: the caller skips with this reason."""


def _pom(dependencies) -> str:
    deps = "".join(f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                   f"<version>{v}</version></dependency>" for g, a, v in dependencies)
    return ('<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
            '</modelVersion><groupId>local.bertpipe</groupId><artifactId>job-server'
            f'</artifactId><version>1</version><dependencies>{deps}</dependencies>'
            '</project>\n')


def _manifest_line(key: str, value: str) -> str:
    """A manifest header folded at 72 bytes (continuation lines start with a space)."""
    text = f"{key}: {value}"
    lines = [text[:72]] + [" " + text[i:i + 71] for i in range(72, len(text), 71)]
    return "\r\n".join(lines) + "\r\n"


def job_server_jar(engine: str) -> str:
    """The path of the engine's job-server jar, building it on first use."""
    if not shutil.which("java") or not shutil.which("mvn"):
        raise Unavailable("needs Java and Maven (mvn) on PATH")
    main_class, dependencies, opens = ENGINES[engine]
    folder = os.path.join(CACHE, f"{engine}-{RUNNER_VERSION}")
    jar = os.path.join(folder, f"{engine}-job-server.jar")
    if os.path.exists(jar):
        return jar
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "pom.xml"), "w") as f:
        f.write(_pom(dependencies))
    done = subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies",
                           "-DoutputDirectory=lib"], cwd=folder, capture_output=True,
                          text=True, timeout=1200)
    if done.returncode:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise Unavailable(f"mvn could not fetch the {engine} runner: {' '.join(tail)}")
    jars = sorted(os.listdir(os.path.join(folder, "lib")))
    manifest = ("Manifest-Version: 1.0\r\n" + _manifest_line("Main-Class", main_class)
                + (_manifest_line("Add-Opens", " ".join(opens)) if opens else "")
                + _manifest_line("Class-Path", " ".join(f"lib/{j}" for j in jars)) + "\r\n")
    tmp = jar + ".tmp"
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", manifest)
    os.replace(tmp, jar)
    return jar


if __name__ == "__main__":
    print(job_server_jar(sys.argv[1]))
