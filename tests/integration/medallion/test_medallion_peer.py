"""bench/medallion_peer.py, the hand-written peer the medallion's cost is measured against (issue 21), writes
the platform's silver and gold rows from the same raw files: the valid rows, without the guarantees.
The DuckDB version of the same logic gives the same silver rows and weekly facts."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from bench import medallion_peer
from jobs import sample_data
from lakehouse.io.catalog import GOLD_FEATURES, GOLD_SALES_WEEKLY, QUARANTINE, SILVER_SALES
from lakehouse.weeks import utc_now
from tests.conftest import write_csv
from tests.integration.helpers import assert_same_content, build, fresh_home, ingest, table

START, WEEKS = date(2024, 1, 1), 8
# Rows the platform quarantines, in a second file of the same delivery (ids as the synthetic world's).
BAD = [
    ["", "SKU0001", "2024-01-01", 1, 2.0, 0, 0, 0],
    ["OUT000001", "SKU0001", "2024-01-03", -1, 2.0, 0, 0, 0],
    ["OUT000002", "SKU0002", "2024-01-03", 1, 0, 0, 0, 0],
    ["OUT000003", "SKU0001", "2024-01-03", "lots", 2.0, 0, 0, 0],
    ["OUT999999", "SKU0001", "2024-01-03", 1, 2.0, 0, 0, 0],
    ["OUT000001", "SKU9999", "2024-01-03", 1, 2.0, 0, 0, 0],
    ["OUT000001", "SKU0001", "2999-01-01", 1, 2.0, 0, 0, 0],
    ["OUT000002", "SKU0003", "2024-01-03", 1e308, 2.0, 0, 0, 0],
    ["OUT000003", "SKU0003", "2024-01-03", 1, 2.5e6, 0, 0, 0],
]
METADATA = ("_batch_id", "_ingested_at")


@pytest.fixture(scope="module")
def both(spark, tmp_path_factory):
    """The platform's tables and the peer's (and DuckDB's) from the same raw files."""
    with fresh_home(tmp_path_factory, "peer") as (root, settings, _):
        raw = root / "raw"
        shape = ["--outlets", "12", "--products", "4", "--weeks", str(WEEKS), "--start", START.isoformat()]
        assert sample_data.main(["synthetic", "--out", str(raw), *shape, "--layout", "single", "--files", "2"]) == 0
        write_csv(raw / "sales" / "all", "zz-bad.csv", BAD)
        ingest(spark, settings, "outlets", raw / "outlets")
        ingest(spark, settings, "products", raw / "products")
        ingest(spark, settings, "sales", raw / "sales" / "all")
        build(spark, settings, START, date.fromordinal(START.toordinal() + 7 * (WEEKS - 1)))
        medallion_peer.run(spark, raw, root / "peer", utc_now())
        medallion_peer.duckdb_medallion(raw, root / "duckdb")
        yield spark, settings, root


def _peer(spark, root, name: str, engine: str = "peer"):
    if engine == "duckdb":
        return spark.read.parquet(str(root / "duckdb" / name))
    return spark.read.format("delta").load(str(root / "peer" / name))


def test_the_peer_drops_the_rows_the_platform_quarantines(both):
    spark, settings, root = both
    assert table(spark, settings, QUARANTINE).count() == len(BAD)
    assert_same_content(table(spark, settings, SILVER_SALES).drop(*METADATA), _peer(spark, root, "silver_sales"))


@pytest.mark.parametrize("gold", [GOLD_SALES_WEEKLY, GOLD_FEATURES], ids=lambda t: t.name)
def test_the_peers_gold_tables_equal_the_platforms(both, gold):
    spark, settings, root = both
    assert_same_content(table(spark, settings, gold).drop("_built_at"), _peer(spark, root, gold.name))


def test_duckdb_gives_the_same_silver_rows_and_weekly_facts(both):
    spark, settings, root = both
    silver = table(spark, settings, SILVER_SALES).drop(*METADATA, "record_id")
    assert_same_content(silver, _peer(spark, root, "silver_sales", "duckdb").select(*silver.columns))
    weekly = table(spark, settings, GOLD_SALES_WEEKLY).drop("_built_at")
    theirs = _peer(spark, root, "gold_sales_weekly", "duckdb").select(*weekly.columns)
    assert_same_content(weekly, theirs.withColumn("n_records", F.col("n_records").cast("bigint")))
