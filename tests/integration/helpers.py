"""Running the jobs' functions against a temp warehouse, and comparing tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from lakehouse.io import delta_io
from lakehouse.io.catalog import Table
from lakehouse.medallion.build_flow import build_weeks
from lakehouse.medallion.ingest_flow import IngestResult, ingest_deliveries
from lakehouse.progress import Progress
from lakehouse.settings import Settings
from lakehouse.weeks import utc_now
from tests.conftest import use_home


@contextmanager
def fresh_home(
    factory: pytest.TempPathFactory, name: str, config: dict[str, Any] | None = None
) -> Iterator[tuple[Path, Settings, pytest.MonkeyPatch]]:
    """A module's own LAKEHOUSE_HOME (local warehouse and MLflow store) under a new temp dir, with `config`
    as its LAKEHOUSE_CONFIG (else the defaults); the environment is restored on exit."""
    root = factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        yield root, use_home(mp, root / "home", config), mp


def ingest(spark: SparkSession, settings: Settings, kind: str, *folders: Path | str) -> list[IngestResult]:
    return ingest_deliveries(spark, settings, [str(f) for f in folders], kind, utc_now())


def ingest_references(spark: SparkSession, settings: Settings, refs: dict[str, Path]) -> None:
    ingest(spark, settings, "outlets", refs["outlets"])
    ingest(spark, settings, "products", refs["products"])


def build(spark: SparkSession, settings: Settings, first: date, last: date, force: bool = False) -> dict:
    return build_weeks(spark, settings, first, last, Progress("test-build"), force=force)


def land_and_build(spark: SparkSession, settings: Settings, raw: Path, start: date, weeks: int) -> None:
    """Ingest a sample-data folder (outlets, products, every sales week) and build its weeks."""
    ingest(spark, settings, "outlets", raw / "outlets")
    ingest(spark, settings, "products", raw / "products")
    ingest(spark, settings, "sales", *sorted((raw / "sales").glob("week=*")))
    build(spark, settings, start, date.fromordinal(start.toordinal() + 7 * (weeks - 1)))


def table(spark: SparkSession, settings: Settings, t: Table) -> DataFrame:
    return delta_io.read(spark, t, settings)


def version(spark: SparkSession, settings: Settings, t: Table) -> int:
    info = delta_io.describe(spark, t, settings)
    assert isinstance(info["version"], int)
    return info["version"]


def assert_same_content(a: DataFrame, b: DataFrame, drop: tuple[str, ...] = ()) -> None:
    """Same rows and columns, whatever the order (metadata columns named in `drop` are ignored)."""
    a, b = a.drop(*drop), b.drop(*drop)
    assert_df_equality(
        a.select(*sorted(a.columns)), b.select(*sorted(b.columns)), ignore_row_order=True, ignore_nullable=True
    )
