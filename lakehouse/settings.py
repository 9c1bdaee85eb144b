"""Every environment variable the platform reads, in one place; light enough for DAG files (no pyspark here).

`VARIABLES` declares each one with its default and meaning; `load_settings` resolves them into one frozen
`Settings`, and nothing else in lakehouse/, jobs/ or dags/ reads the environment (tests/unit/test_settings.py
checks). docs/reference/configuration.md is generated from `VARIABLES` (lakehouse/cli/reference.py, `make docs`).
Policy (training, gate, effects, scoring, monitoring) is not here: it is YAML (lakehouse/policy.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG4J_CONFIG = REPO_ROOT / "lakehouse" / "log4j2.properties"
# The key that pseudonymises personal data in silver (lakehouse.contracts.pii); Airflow tasks set the variable
# from the password of this connection.
PII_SECRET_ENV = "LAKEHOUSE_PII_SECRET"
PII_CONNECTION = "lakehouse_pii"


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as the reference shows it
    meaning: str
    group: str


VARIABLES: tuple[Variable, ...] = (
    Variable("LAKEHOUSE_HOME", "`.lakehouse/` in the checkout", "all local state", "storage"),
    Variable(
        "LAKEHOUSE_WAREHOUSE",
        "`$LAKEHOUSE_HOME/warehouse`",
        "where tables live; a URI, e.g. `s3a://bucket/wh`",
        "storage",
    ),
    Variable("LAKEHOUSE_DATA_DIR", "`$LAKEHOUSE_HOME/deliveries`", "where setup puts the sample deliveries", "storage"),
    Variable(
        "LAKEHOUSE_LANDING",
        "`$LAKEHOUSE_DATA_DIR/dominicks`",
        "where `ingest_and_build` finds deliveries: `outlets/`, `products/`, `sales/week=*/`",
        "storage",
    ),
    Variable("LAKEHOUSE_CONTRACTS_DIR", "`contracts/`", "the data contracts (ODCS YAML)", "storage"),
    Variable(
        "LAKEHOUSE_CONFIG",
        "unset",
        "YAML overriding `lakehouse/policy.yaml` (training, gate, registry, effects, scoring, monitoring, serving)",
        "policy",
    ),
    Variable("LAKEHOUSE_SPARK_MASTER", "`local[*]`", "Spark master of commands, e.g. `spark://host:7077`", "spark"),
    Variable(
        "LAKEHOUSE_JARS_DIR", "`.cache/jars/`", "jars Spark loads (`make jars` resolves scripts/jars.pom.xml)", "spark"
    ),
    Variable("LAKEHOUSE_DRIVER_MEMORY", "`4g`", "driver memory; local mode runs the tasks in the driver JVM", "spark"),
    Variable("LAKEHOUSE_SHUFFLE_PARTITIONS", "`8`", "`spark.sql.shuffle.partitions`", "spark"),
    Variable(
        "LAKEHOUSE_DELTA_SNAPSHOT_PARTITIONS",
        "`2` (local masters only)",
        "tasks Delta rebuilds table state with (its default 50 costs ~1.5 s a write on one machine)",
        "spark",
    ),
    Variable("LAKEHOUSE_SPARK_LOG_LEVEL", "`ERROR`", "log level of the Spark context", "spark"),
    Variable(
        "LAKEHOUSE_DRIVER_JAVA_OPTIONS",
        "none",
        "extra driver JVM options; `-XX:TieredStopAtLevel=1` halves a cold short command but slows long "
        "sessions (bench/RESULTS.md), so it is a per-deployment choice",
        "spark",
    ),
    Variable(
        "LAKEHOUSE_JVM_ARCHIVE",
        "`.cache/jvm/spark.jsa`",
        "class-data-sharing archive local drivers map (`make jvm-archive`, part of setup; a stale one is skipped)",
        "spark",
    ),
    Variable(
        "LAKEHOUSE_SPARK_PATHS_IN_IMAGE",
        "`false`",
        "`true` on Kubernetes: tasks pass the launcher and jars as `local://` paths of the image",
        "spark",
    ),
    Variable("JAVA_HOME", "the `java` on PATH", "the JDK Spark starts", "spark"),
    Variable("MLFLOW_TRACKING_URI", "SQLite under `$LAKEHOUSE_HOME/mlflow`", "an MLflow tracking server URL", "mlflow"),
    Variable(
        "LAKEHOUSE_ACTOR", "the OS user", "who registry changes are recorded as (`airflow:<dag_id>` in tasks)", "mlflow"
    ),
    Variable(
        "LAKEHOUSE_ALERT_WEBHOOK",
        "unset",
        "URL failed DAG tasks POST their alert line to (also appended to `$LAKEHOUSE_HOME/alerts.log`)",
        "airflow",
    ),
    Variable(
        "LAKEHOUSE_SERVE_HOST", "`127.0.0.1`", "address `lakehouse serve` listens on (`0.0.0.0` in a pod)", "serving"
    ),
    Variable("LAKEHOUSE_SERVE_PORT", "`8000`", "port `lakehouse serve` listens on", "serving"),
    Variable(
        "LAKEHOUSE_SERVE_TOKENS",
        "`$LAKEHOUSE_HOME/serving/tokens.yaml`",
        "the API's bearer tokens, hashed (`lakehouse serve-token` adds one; on Kubernetes a mounted Secret key)",
        "serving",
    ),
    Variable(
        PII_SECRET_ENV,
        "unset (required by `build`)",
        f"HMAC key (>= 32 characters) for personal data; in Airflow the password of connection `{PII_CONNECTION}`",
        "secrets",
    ),
    Variable(
        "AWS_ENDPOINT_URL_S3",
        "unset (AWS)",
        "an S3-compatible endpoint (MinIO, ...); path-style access then",
        "object store",
    ),
    Variable(
        "AWS_ENDPOINT_URL",
        "unset (AWS)",
        "the same, for every AWS service (read when the above is unset)",
        "object store",
    ),
    Variable("AWS_REGION", "`AWS_DEFAULT_REGION`, else `us-east-1`", "region of that endpoint", "object store"),
    Variable("AWS_DEFAULT_REGION", "unset", "read when `AWS_REGION` is unset", "object store"),
    Variable(
        "PYSPARK_GATEWAY_PORT",
        "set by spark-submit",
        "never set by hand: its presence says the driver JVM already runs",
        "set by tools",
    ),
)
_DECLARED = frozenset(v.name for v in VARIABLES)


@dataclass(frozen=True)
class Settings:
    """Where state lives and how Spark, MLflow and object storage are reached; every field has a default."""

    home: Path
    spark_master: str
    jars_dir: Path
    contracts_dir: Path
    data_dir: Path
    warehouse: str  # a URI when it is an object store (s3a://bucket/prefix)
    landing: str = ""
    config_file: Path | None = None
    driver_memory: str = "4g"
    shuffle_partitions: str = "8"
    delta_snapshot_partitions: str = "2"
    spark_log_level: str = "ERROR"
    extra_java_options: str = ""
    jvm_archive: Path = REPO_ROOT / ".cache" / "jvm" / "spark.jsa"
    spark_paths_in_image: bool = False
    java_home: str | None = None
    mlflow_tracking_uri: str | None = None
    actor: str | None = None
    alert_webhook: str | None = None
    s3_endpoint: str | None = None
    aws_region: str = "us-east-1"
    under_spark_submit: bool = False
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    serve_tokens: Path | None = None  # None: `serving/tokens.yaml` under the home (see `tokens_file`)

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def tokens_file(self) -> Path:
        """The API's hashed bearer tokens: LAKEHOUSE_SERVE_TOKENS, else under the home."""
        return self.serve_tokens or self.home / "serving" / "tokens.yaml"

    @property
    def tracking_uri(self) -> str:
        """The tracking server when MLFLOW_TRACKING_URI names one, else SQLite under the home."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"


def _read(env: Mapping[str, str], name: str) -> str | None:
    """A declared variable's value; empty counts as unset. An undeclared name is a programming error."""
    if name not in _DECLARED:
        raise KeyError(f"{name} is not declared in lakehouse.settings.VARIABLES")
    return env.get(name) or None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Resolve every variable of `VARIABLES` from `env` (default: the process environment)."""
    env = os.environ if env is None else env

    def get(name: str, default: str) -> str:
        return _read(env, name) or default

    home = Path(get("LAKEHOUSE_HOME", str(REPO_ROOT / ".lakehouse"))).resolve()
    data_dir = Path(get("LAKEHOUSE_DATA_DIR", str(home / "deliveries"))).resolve()
    config_file = _read(env, "LAKEHOUSE_CONFIG")
    return Settings(
        home=home,
        spark_master=get("LAKEHOUSE_SPARK_MASTER", "local[*]"),
        jars_dir=Path(get("LAKEHOUSE_JARS_DIR", str(REPO_ROOT / ".cache" / "jars"))).resolve(),
        contracts_dir=Path(get("LAKEHOUSE_CONTRACTS_DIR", str(REPO_ROOT / "contracts"))).resolve(),
        data_dir=data_dir,
        warehouse=get("LAKEHOUSE_WAREHOUSE", str(home / "warehouse")),
        landing=get("LAKEHOUSE_LANDING", str(data_dir / "dominicks")),
        config_file=Path(config_file) if config_file else None,
        driver_memory=get("LAKEHOUSE_DRIVER_MEMORY", "4g"),
        shuffle_partitions=get("LAKEHOUSE_SHUFFLE_PARTITIONS", "8"),
        delta_snapshot_partitions=get("LAKEHOUSE_DELTA_SNAPSHOT_PARTITIONS", "2"),
        spark_log_level=get("LAKEHOUSE_SPARK_LOG_LEVEL", "ERROR"),
        extra_java_options=get("LAKEHOUSE_DRIVER_JAVA_OPTIONS", ""),
        jvm_archive=Path(get("LAKEHOUSE_JVM_ARCHIVE", str(REPO_ROOT / ".cache" / "jvm" / "spark.jsa"))),
        spark_paths_in_image=get("LAKEHOUSE_SPARK_PATHS_IN_IMAGE", "").lower() in ("1", "true", "yes"),
        java_home=_read(env, "JAVA_HOME"),
        mlflow_tracking_uri=_read(env, "MLFLOW_TRACKING_URI"),
        actor=_read(env, "LAKEHOUSE_ACTOR"),
        alert_webhook=_read(env, "LAKEHOUSE_ALERT_WEBHOOK"),
        s3_endpoint=_read(env, "AWS_ENDPOINT_URL_S3") or _read(env, "AWS_ENDPOINT_URL"),
        aws_region=_read(env, "AWS_REGION") or get("AWS_DEFAULT_REGION", "us-east-1"),
        under_spark_submit=_read(env, "PYSPARK_GATEWAY_PORT") is not None,
        serve_host=get("LAKEHOUSE_SERVE_HOST", "127.0.0.1"),
        serve_port=_port(get("LAKEHOUSE_SERVE_PORT", "8000")),
        serve_tokens=Path(tokens).resolve() if (tokens := _read(env, "LAKEHOUSE_SERVE_TOKENS")) else None,
    )


def _port(text: str) -> int:
    """LAKEHOUSE_SERVE_PORT as a TCP port, or a UsageError naming the variable."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"LAKEHOUSE_SERVE_PORT must be a TCP port (1-65535): {text!r}")
    return int(text)


def pii_secret(env: Mapping[str, str] | None = None) -> str:
    """The pseudonymisation key's text ('' when unset); kept out of `Settings` so no repr or dict shows it."""
    return (_read(os.environ if env is None else env, PII_SECRET_ENV) or "").strip()


def driver_java_options(settings: Settings, master: str | None = None) -> str:
    """The Spark driver's JVM options: Derby and log4j set up under the home, the class archive when the
    driver runs on this machine and setup made one, plus LAKEHOUSE_DRIVER_JAVA_OPTIONS."""
    options = [f"-Dderby.system.home={settings.home / 'derby'}", f"-Dlog4j.configurationFile={LOG4J_CONFIG}"]
    if settings.jvm_archive.is_file() and not (master or settings.spark_master).startswith(("k8s://", "yarn")):
        # -Xshare:auto (the default): a stale archive is skipped; its notices stay off the job's output.
        options += [f"-XX:SharedArchiveFile={settings.jvm_archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return " ".join([*options, settings.extra_java_options]).strip()
