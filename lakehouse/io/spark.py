"""The one place a SparkSession is built: Delta configured, master and conf from settings."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse.errors import SetupError
from lakehouse.settings import Settings, driver_java_options, load_settings

# `make jars` resolves scripts/jars.pom.xml into the jars dir; Spark loads every jar there. These must be among them.
REQUIRED_JARS = ("delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar", "hadoop-aws-3.4.1.jar")


def _check_java(settings: Settings) -> None:
    java = Path(settings.java_home, "bin", "java") if settings.java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise SetupError(
            "Java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME"
        )


def jar_paths(settings: Settings) -> list[Path]:
    """Every jar of the jars dir; a clear error names missing required ones and the command that fetches them."""
    missing = [name for name in REQUIRED_JARS if not (settings.jars_dir / name).exists()]
    if missing:
        raise SetupError(f"Spark jars missing from {settings.jars_dir}: {', '.join(missing)}; run `make jars`")
    return sorted(settings.jars_dir.glob("*.jar"))


def s3a_conf(settings: Settings) -> dict[str, str]:
    """Hadoop S3A settings for an S3-compatible endpoint (`AWS_ENDPOINT_URL[_S3]`, as boto3 reads it).

    Credentials are not passed here: S3A's default chain reads `AWS_ACCESS_KEY_ID` and
    `AWS_SECRET_ACCESS_KEY` from the environment (or an instance/pod role), so no secret enters Spark conf.
    """
    endpoint = settings.s3_endpoint
    conf = {"spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem"}
    if endpoint:
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": settings.aws_region,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        }
    return conf


def get_spark(
    app_name: str = "lakehouse",
    settings: Settings | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """Build (or reuse) the SparkSession with Delta Lake; `conf` overrides the defaults."""
    active = SparkSession.getActiveSession()
    if active is not None:
        # A job called in-process (tests, notebooks) joins the running session as it is configured;
        # re-applying defaults would silently change its runtime settings.
        return active
    settings = settings or load_settings()
    _check_java(settings)
    jars = ",".join(str(p) for p in jar_paths(settings))
    defaults = {
        "spark.jars": jars,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        # In local mode the driver JVM also runs the tasks: give it room (only read when the JVM starts).
        "spark.driver.memory": settings.driver_memory,
        "spark.sql.shuffle.partitions": settings.shuffle_partitions,
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(settings.home / "spark-warehouse"),
        "spark.driver.extraJavaOptions": driver_java_options(settings),
        # Schema changes only where a write asks for them (mergeSchema on bronze appends and rebuilds).
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        **s3a_conf(settings),
    }
    if settings.spark_master.startswith("local"):
        # Delta rebuilds table state with 50 tasks by default; on one machine that costs ~1.5 s per
        # write for tables of a few hundred files, against ~0.2 s with 2 (measured on 2 cores).
        defaults["spark.databricks.delta.snapshotPartitions"] = settings.delta_snapshot_partitions
    # Python workers (pandas UDFs, xgboost.spark) must run this interpreter, with its packages; pyspark
    # reads the variable when the context starts (its default, `python3` on PATH, may lack them).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")  # the pandas API on Spark asks for it before start
    # Spark otherwise warns on every start that the host name resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    if not settings.under_spark_submit:
        # Under spark-submit (Airflow's SparkSubmitOperator) the driver JVM already runs: its master, jars
        # and memory come from the command line and the `spark_default` connection, not from here.
        builder = builder.master(settings.spark_master)
    for key, value in {**defaults, **(conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark_log_level)
    return spark
