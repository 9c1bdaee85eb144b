"""Settings from the environment; light enough for DAG files to import (no pyspark here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The key that pseudonymises personal data in silver (see lakehouse.contracts.pii): from this variable, which Airflow
# tasks set from the password of this connection. Named here because DAG files may not import pyspark.
PII_SECRET_ENV = "LAKEHOUSE_PII_SECRET"
PII_CONNECTION = "lakehouse_pii"


@dataclass(frozen=True)
class Settings:
    """Where state lives and how Spark is reached; every field has an embedded default."""

    home: Path
    spark_master: str
    jars_dir: Path
    contracts_dir: Path
    data_dir: Path
    warehouse: str

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"


LOG4J_CONFIG = REPO_ROOT / "lakehouse" / "log4j2.properties"
# Extra options for the driver JVM, e.g. `-XX:TieredStopAtLevel=1` (C1 only): it halved a cold one-file ingest
# (bench/RESULTS.md), but a `make test` with it on was far slower (half the suite in 48 min, against 44 min for
# all of it before; long-lived sessions need C2), so it is a per-deployment choice, not a default.
JAVA_OPTIONS_ENV = "LAKEHOUSE_DRIVER_JAVA_OPTIONS"


# A class-data-sharing archive of the classes a Spark job loads (the JDK's dynamic CDS), made at setup by
# `make jvm-archive` (scripts/jvm_archive.py): a driver JVM on this machine maps them from one file instead
# of loading and verifying them from the jars one by one. A JVM whose class path differs ignores it.
JVM_ARCHIVE_ENV = "LAKEHOUSE_JVM_ARCHIVE"


def jvm_archive(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    return Path(env.get(JVM_ARCHIVE_ENV, REPO_ROOT / ".cache" / "jvm" / "spark.jsa"))


def driver_java_options(settings: Settings, env: dict[str, str] | None = None, master: str | None = None) -> str:
    """The Spark driver's JVM options: Derby and log4j set up under the home, the class archive when the
    driver runs on this machine and setup made one, plus LAKEHOUSE_DRIVER_JAVA_OPTIONS."""
    env = dict(os.environ) if env is None else env
    options = [f"-Dderby.system.home={settings.home / 'derby'}", f"-Dlog4j.configurationFile={LOG4J_CONFIG}"]
    archive = jvm_archive(env)
    if archive.is_file() and not (master or settings.spark_master).startswith(("k8s://", "yarn")):
        # -Xshare:auto (the default): a stale archive is skipped; its notices stay off the job's output.
        options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return " ".join([*options, env.get(JAVA_OPTIONS_ENV, "")]).strip()


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read `LAKEHOUSE_*` variables, falling back to a local, single-machine layout."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("LAKEHOUSE_HOME", REPO_ROOT / ".lakehouse")).resolve()
    return Settings(
        home=home,
        spark_master=env.get("LAKEHOUSE_SPARK_MASTER", "local[*]"),
        jars_dir=Path(env.get("LAKEHOUSE_JARS_DIR", REPO_ROOT / ".cache" / "jars")).resolve(),
        contracts_dir=Path(env.get("LAKEHOUSE_CONTRACTS_DIR", REPO_ROOT / "contracts")).resolve(),
        data_dir=Path(env.get("LAKEHOUSE_DATA_DIR", home / "deliveries")).resolve(),
        # The warehouse may be an object store (s3a://bucket/prefix); it is kept as a string URI.
        warehouse=env.get("LAKEHOUSE_WAREHOUSE", str(home / "warehouse")),
    )
