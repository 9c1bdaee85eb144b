"""Settings from the environment; light enough for DAG files to import (no pyspark here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The key that pseudonymises personal data in silver (see lakehouse.pii): from this variable, which Airflow
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
# On a local master the driver JVM runs the tasks too, of jobs that last seconds to minutes on one machine's
# data: there C2's compilation costs more than it saves, and C1 alone halved a cold one-file ingest (25 s ->
# 12 s, bench/RESULTS.md). A cluster's driver keeps the JVM's default. LAKEHOUSE_DRIVER_JAVA_OPTIONS replaces it.
LOCAL_JIT = "-XX:TieredStopAtLevel=1"


def driver_java_options(settings: Settings, master: str, env: dict[str, str] | None = None) -> str:
    """The Spark driver's JVM options: Derby and log4j set up under the home, and the JIT choice above."""
    env = dict(os.environ) if env is None else env
    jit = env.get("LAKEHOUSE_DRIVER_JAVA_OPTIONS", LOCAL_JIT if master.startswith("local") else "")
    return f"-Dderby.system.home={settings.home / 'derby'} -Dlog4j.configurationFile={LOG4J_CONFIG} {jit}".strip()


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
