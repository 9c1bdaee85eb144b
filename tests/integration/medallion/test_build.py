"""Silver and gold builds: quarantine reasons, conservation, corrections and idempotency."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from lakehouse.io.catalog import (
    CONSERVATION,
    GOLD_FEATURES,
    GOLD_SALES_WEEKLY,
    QUARANTINE,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    SILVER_SALES,
)
from lakehouse.medallion.build_flow import build_silver_sales, sales_inputs
from tests.conftest import SALES_HEADER, write_csv
from tests.integration.helpers import assert_same_content, build, ingest, ingest_references, table, version

WEEK1, WEEK2 = date(2024, 1, 1), date(2024, 1, 8)
GOOD = [
    ["O1", "P1", "2024-01-01", 5, 2.5, 1, 0, 0],
    ["O1", "P2", "2024-01-02", 3, 1.5, 0, 1, 0],
    ["O2", "P1", "2024-01-09", 4, 2.5, 0, 0, 1],
]
BAD = {
    "null_key": ["", "P1", "2024-01-01", 1, 2.0, 0, 0, 0],
    "negative_units": ["O1", "P3", "2024-01-01", -1, 2.0, 0, 0, 0],
    "non_positive_price": ["O2", "P2", "2024-01-01", 1, 0, 0, 0, 0],
    "unparseable_value": ["O3", "P1", "2024-01-01", "lots", 2.0, 0, 0, 0],
    "unknown_outlet": ["O9", "P1", "2024-01-01", 1, 2.0, 0, 0, 0],
    "unknown_product": ["O1", "P9", "2024-01-01", 1, 2.0, 0, 0, 0],
    "future_date": ["O1", "P1", "2999-01-01", 1, 2.0, 0, 0, 0],
    "missing_value": ["O3", "P2", "2024-01-02", 1, "", 0, 0, 0],
    "implausible_units": ["O2", "P3", "2024-01-03", 1e308, 2.0, 0, 0, 0],
    "implausible_price": ["O3", "P3", "2024-01-03", 1, 2.5e6, 0, 0, 0],
}
# Parquet carries NaN and infinity as doubles (in CSV or JSON, bronze rescues them as unparseable values).
NON_FINITE = {
    "non_finite_units": {
        "outlet_id": "O2",
        "product_id": "P3",
        "sale_date": "2024-01-02",
        "units": float("nan"),
        "unit_price": 2.0,
    },
    "non_finite_price": {
        "outlet_id": "O3",
        "product_id": "P3",
        "sale_date": "2024-01-02",
        "units": 1,
        "unit_price": float("inf"),
    },
}


def _quarantine_reasons(spark, settings) -> dict[str, int]:
    rows = table(spark, settings, QUARANTINE).filter(F.col("table_name") == SILVER_SALES.name)
    return {r["reason"]: r["count"] for r in rows.groupBy("reason").count().collect()}


def test_every_bad_row_is_quarantined_with_its_reason_and_rows_are_conserved(
    spark, settings, tmp_path, reference_deliveries
):
    ingest_references(spark, settings, reference_deliveries)
    (tmp_path / "d1").mkdir()
    pq.write_table(pa.Table.from_pylist(list(NON_FINITE.values())), tmp_path / "d1" / "non_finite.parquet")
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "sales.csv", GOOD + list(BAD.values())).parent)
    totals = build(spark, settings, WEEK1, WEEK2)

    assert _quarantine_reasons(spark, settings) == dict.fromkeys([*BAD, *NON_FINITE], 1)
    assert totals == {"bronze_rows": 15, "silver_rows": 3, "quarantined": 12, "duplicates": 0, "superseded": 0}
    record = table(spark, settings, QUARANTINE).filter(F.col("reason") == "unparseable_value").first()
    assert json.loads(json.loads(record["record"])["_rescued_data"]) == {"units": "lots"}
    assert record["detail"].startswith('units=["lots"]')
    conservation = table(spark, settings, CONSERVATION).filter(F.col("table_name") == SILVER_SALES.name)
    assert conservation.filter(~F.col("is_balanced")).count() == 0
    assert conservation.agg(F.sum("bronze_rows")).first()[0] == 15
    assert table(spark, settings, SILVER_SALES).filter(F.col("week_start") == WEEK2).count() == 1
    assert table(spark, settings, SILVER_OUTLETS).count() == 3 and table(spark, settings, SILVER_PRODUCTS).count() == 3


def test_a_later_delivery_corrects_a_record_and_the_old_version_is_superseded(
    spark, settings, tmp_path, reference_deliveries
):
    ingest_references(spark, settings, reference_deliveries)
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", [*GOOD, GOOD[0]]).parent)
    header = [*SALES_HEADER, "record_id"]
    ingest(
        spark,
        settings,
        "sales",
        write_csv(
            tmp_path / "d2",
            "s.csv",
            [
                ["O1", "P1", "2024-01-01", 50, 2.5, 1, 0, 0, ""],  # same natural key as GOOD[0]: correction
                ["O2", "P2", "2024-01-03", 7, 1.5, 0, 0, 0, "r1"],
            ],
            header=header,
        ).parent,
    )
    ingest(
        spark,
        settings,
        "sales",
        write_csv(
            tmp_path / "d3",
            "s.csv",
            [
                ["O2", "P2", "2024-01-04", 8, 1.5, 0, 0, 0, "r1"],  # same record id, new day: correction
            ],
            header=header,
        ).parent,
    )
    totals = build(spark, settings, WEEK1, WEEK2)

    assert totals == {"bronze_rows": 7, "silver_rows": 4, "quarantined": 0, "duplicates": 1, "superseded": 2}
    silver = {(r["outlet_id"], r["product_id"]): r for r in table(spark, settings, SILVER_SALES).collect()}
    assert silver[("O1", "P1")]["units"] == 50.0
    assert silver[("O2", "P2")]["units"] == 8.0 and str(silver[("O2", "P2")]["sale_date"]) == "2024-01-04"
    weekly = table(spark, settings, GOLD_SALES_WEEKLY).filter(F.col("outlet_id") == "O1").collect()
    assert sorted((r["product_id"], r["units"]) for r in weekly) == [("P1", 50.0), ("P2", 3.0)]


BUILT = (SILVER_SALES, QUARANTINE, CONSERVATION, GOLD_SALES_WEEKLY, GOLD_FEATURES)


def _versions(spark, settings) -> dict[str, int]:
    return {t.name: version(spark, settings, t) for t in BUILT}


def test_building_twice_changes_nothing(spark, settings, tmp_path, reference_deliveries):
    ingest_references(spark, settings, reference_deliveries)
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", GOOD + list(BAD.values())).parent)
    build(spark, settings, WEEK1, WEEK2)
    first = {t.name: table(spark, settings, t).localCheckpoint() for t in BUILT}
    versions = _versions(spark, settings)
    totals = build(spark, settings, WEEK1, WEEK2)
    for t in BUILT:
        assert_same_content(table(spark, settings, t), first[t.name])
    assert table(spark, settings, GOLD_FEATURES).count() == 3
    # Same bronze version, references, contracts and code: nothing is written, and the totals are reported.
    assert _versions(spark, settings) == versions
    assert totals == {"bronze_rows": 13, "silver_rows": 3, "quarantined": 10, "duplicates": 0, "superseded": 0}
    # A build of part of the range, or forced, still writes the same content.
    build(spark, settings, WEEK2, WEEK2)
    assert _versions(spark, settings) == versions
    build_weeks_forced(spark, settings)
    assert _versions(spark, settings)[SILVER_SALES.name] > versions[SILVER_SALES.name]
    for t in BUILT:
        assert_same_content(table(spark, settings, t), first[t.name])


def build_weeks_forced(spark, settings) -> None:
    from lakehouse.medallion.build_flow import build_weeks
    from lakehouse.progress import Progress

    build_weeks(spark, settings, WEEK1, WEEK2, Progress("test-build"), force=True)


def test_a_new_delivery_or_an_interrupted_build_rebuilds_the_weeks(spark, settings, tmp_path, reference_deliveries):
    ingest_references(spark, settings, reference_deliveries)
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", GOOD).parent)
    build(spark, settings, WEEK1, WEEK2)
    # A correction lands: bronze has a new version, so the weeks are built again.
    ingest(
        spark,
        settings,
        "sales",
        write_csv(tmp_path / "d2", "s.csv", [["O1", "P1", "2024-01-01", 9, 2.5, 1, 0, 0]]).parent,
    )
    build(spark, settings, WEEK1, WEEK2)
    assert (
        table(spark, settings, GOLD_SALES_WEEKLY).filter("outlet_id = 'O1' AND product_id = 'P1'").first()["units"] == 9
    )
    # A build killed after silver, before gold and conservation: the next build does not take the weeks as built.
    ingest(
        spark,
        settings,
        "sales",
        write_csv(tmp_path / "d3", "s.csv", [["O1", "P1", "2024-01-01", 11, 2.5, 1, 0, 0]]).parent,
    )
    build_silver_sales(spark, settings, WEEK1, WEEK2, *sales_inputs(spark, settings))
    build(spark, settings, WEEK1, WEEK2)
    assert (
        table(spark, settings, GOLD_SALES_WEEKLY).filter("outlet_id = 'O1' AND product_id = 'P1'").first()["units"]
        == 11
    )
