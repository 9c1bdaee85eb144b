"""One Spark session for the whole run; every test gets its own LAKEHOUSE_HOME under tmp_path; one local S3 server."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from pyspark.sql import SparkSession

from lakehouse.io.spark import get_spark, s3a_conf
from lakehouse.settings import Settings, load_settings
from tests.integration import servers

# Silver pseudonymises personal data with a key the environment must give (lakehouse.contracts.pii); jobs and the
# subprocesses tests start get this one. Tests of a missing key or of the Airflow connection unset it.
TEST_PII_SECRET = "tests-only-pii-key-0123456789abcdef0123456789abcdef"
os.environ.setdefault("LAKEHOUSE_PII_SECRET", TEST_PII_SECRET)

SALES_HEADER = ["outlet_id", "product_id", "sale_date", "units", "unit_price", "on_deal", "featured", "on_display"]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = get_spark(
        "lakehouse-tests",
        conf={
            "spark.master": "local[2]",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )
    yield session
    session.stop()


def use_home(mp: pytest.MonkeyPatch, home: Path, config: dict[str, Any] | None = None) -> Settings:
    """The one way tests point the platform at a home: LAKEHOUSE_HOME (warehouse, MLflow store, reports) is
    `home`, `config` its LAKEHOUSE_CONFIG (else the policy's defaults), and no variable that would point a
    table, the contracts or the registry elsewhere is left set. Jobs and subprocesses read the same env."""
    mp.setenv("LAKEHOUSE_HOME", str(home))
    for var in ("LAKEHOUSE_WAREHOUSE", "LAKEHOUSE_CONTRACTS_DIR", "LAKEHOUSE_CONFIG", "MLFLOW_TRACKING_URI"):
        mp.delenv(var, raising=False)
    if config is not None:
        path = home.with_name(home.name + "-config.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        mp.setenv("LAKEHOUSE_CONFIG", str(path))
    return load_settings()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing every table at a fresh home under tmp_path (jobs read the same env)."""
    return use_home(monkeypatch, tmp_path / "home")


def write_csv(folder: Path, name: str, rows: list[list[object]], header: list[str] | None = None) -> Path:
    """A delivery file: CSV with a header (SALES_HEADER unless given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header or SALES_HEADER)
        writer.writerows(rows)
    return path


def write_jsonl(folder: Path, name: str, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def reference_deliveries(tmp_path: Path) -> dict[str, Path]:
    """Outlets O1..O3 and products P1..P3 (one category) as delivery folders."""
    outlets = write_csv(
        tmp_path / "deliveries" / "outlets",
        "outlets.csv",
        [["O1", "retail", "north", 10.1], ["O2", "foodservice", "south", 10.5], ["O3", "digital", "east", 9.9]],
        header=["outlet_id", "channel", "region", "income"],
    ).parent
    products = write_csv(
        tmp_path / "deliveries" / "products",
        "products.csv",
        [[f"P{i}", f"Brand{i}", f"Maker{i}", "juice", 64] for i in (1, 2, 3)],
        header=["product_id", "brand", "manufacturer", "category", "pack_size"],
    ).parent
    return {"outlets": outlets, "products": products}


# A local S3-compatible server, started once per session: Hadoop caches one S3A filesystem per bucket in the
# JVM, with the endpoint it was created with, so a second server on another port would never be reached.
BUCKET = "pos-deliveries"
KEY, SECRET = "test-access-key", "test-secret-key"  # the local server accepts any; nothing real


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with servers.s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(spark: SparkSession, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A bucket on the local server, and the shared session's S3A pointed at it."""
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_REGION": "us-east-1"}
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3a_conf(load_settings(env)).items():
        hadoop.set(key.removeprefix("spark.hadoop."), value)
    # The JVM started before this test, so its environment has no credentials; set them on the session.
    hadoop.set("fs.s3a.access.key", KEY)
    hadoop.set("fs.s3a.secret.key", SECRET)
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


# The longest modules, longest first (serial seconds measured on 2 cores, bench/RESULTS.md). xdist hands
# whole modules to workers in collection order (`--dist loadfile --no-loadscope-reorder`), so starting
# them first keeps them from ending side by side while the other workers idle.
LONGEST_MODULES = (
    "tests/dags/test_scheduler.py",  # about 460 s: 12 spark-submits through a LocalExecutor
    "tests/dags/test_dags.py",  # about 400 s: every DAG, one spark-submit run of ingest_and_build
    "tests/e2e/test_docs.py",  # 540 s beside a `make run`: the quickstart and runbooks, every command
    "tests/integration/io/test_cluster.py",  # about 220 s: a standalone cluster
    "tests/e2e/test_killed_jobs.py",  # 380-830 s: an undisturbed run, then seven kill -9s and re-runs
    "tests/integration/monitoring/test_monitor.py",  # about 250 s: a scenario with a trained champion
    "tests/integration/ml/test_train_dominicks.py",  # about 250 s: Dominick's built, trained, its effects
    "tests/integration/ml/test_effects.py",  # about 230 s: confounded data built, trained, effects, EconML
    "tests/integration/scoring/test_score.py",
    "tests/integration/medallion/test_evolution.py",
    "tests/integration/ml/test_train.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, in LONGEST_MODULES order, then the others with `slow` tests, then the rest.

    Within a module the order is kept (its tests may build on each other's state).
    """
    root = Path(str(config.rootpath))
    rank = {root / name: i for i, name in enumerate(LONGEST_MODULES)}
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (rank.get(item.path, len(rank)), item.path not in slow_modules))
