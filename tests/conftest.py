"""One Spark session for the whole run; every test gets its own LAKEHOUSE_HOME under tmp_path."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from lakehouse.io.spark import get_spark
from lakehouse.settings import Settings, load_settings

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


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing every table at a fresh warehouse under tmp_path (jobs read the same env)."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAKEHOUSE_WAREHOUSE", raising=False)
    monkeypatch.delenv("LAKEHOUSE_CONTRACTS_DIR", raising=False)
    return load_settings()


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


# The longest modules, longest first (serial seconds measured on 2 cores, bench/RESULTS.md). xdist hands
# whole modules to workers in collection order (`--dist loadfile --no-loadscope-reorder`), so starting
# them first keeps them from ending side by side while the other workers idle.
LONGEST_MODULES = (
    "tests/dags/test_scheduler.py",  # about 460 s: 12 spark-submits through a LocalExecutor
    "tests/dags/test_dags.py",  # about 400 s: every DAG, one spark-submit run of ingest_and_build
    "tests/integration/test_cluster.py",  # about 220 s: a standalone cluster
    "tests/integration/test_monitor.py",  # about 250 s: a scenario with a trained champion
    "tests/integration/test_train_dominicks.py",  # about 250 s: Dominick's built, trained, its effects
    "tests/integration/test_effects.py",  # about 230 s: confounded data built, trained, effects, EconML
    "tests/integration/test_score.py",
    "tests/integration/test_evolution.py",
    "tests/integration/test_train.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first, in LONGEST_MODULES order, then the others with `slow` tests, then the rest.

    Within a module the order is kept (its tests may build on each other's state).
    """
    root = Path(str(config.rootpath))
    rank = {root / name: i for i, name in enumerate(LONGEST_MODULES)}
    slow_modules = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (rank.get(item.path, len(rank)), item.path not in slow_modules))
