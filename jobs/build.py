"""Build silver and gold for a range of weeks from what bronze holds; idempotent per week."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.catalog import (
    BRONZE_OUTLETS,
    BRONZE_PRODUCTS,
    BRONZE_SALES,
    CONSERVATION,
    GOLD_FEATURES,
    GOLD_SALES_WEEKLY,
    QUARANTINE,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    SILVER_SALES,
    Table,
)
from lakehouse.config import Settings, load_settings
from lakehouse.contracts import load_contract
from lakehouse.gold import affected_feature_weeks, build_features, build_sales_weekly, feature_input_weeks
from lakehouse.runtime import DataError, Progress, iso_date, run_main, week_range
from lakehouse.schema import select_contract
from lakehouse.silver import (
    KEY,
    REASON,
    STATUS,
    build_quarantine,
    record_key,
    with_quarantine_reason,
    with_record_status,
    with_reference_flags,
)
from lakehouse.spark import get_spark

# The week a bronze row is accounted in. Rows without a usable date (missing, unparseable, or in a week
# after their delivery was ingested) have none: every build quarantines them in the undated partition,
# so no row waits in bronze for a week nobody builds.
WEEK_OF_ROW = (
    "CASE WHEN sale_date <= date_add(to_date(date_trunc('week', _ingested_at)), 6) "
    "THEN to_date(date_trunc('week', sale_date)) END"
)


def _week_counts(df: DataFrame, by_week: bool, *columns: str) -> dict[tuple, int]:
    """Row counts keyed by (week_start, *columns); week_start is None for tables without weeks."""
    week = F.col("week_start") if by_week else F.lit(None).cast("date").alias("week_start")
    return delta_io.count_by(df.select(week, *columns), "week_start", *columns)


def _conservation(
    spark: SparkSession,
    settings: Settings,
    table: Table,
    predicate: str,
    bronze_df: DataFrame,
    statuses_df: DataFrame,
) -> list[dict]:
    """Per week: bronze rows in = silver + quarantined + duplicates + superseded, counted on the written tables."""
    by_week = "week_start" in bronze_df.columns
    quarantine_df = delta_io.read(spark, QUARANTINE, settings).filter(F.col("table_name") == table.name)
    if by_week:
        quarantine_df = quarantine_df.filter(f"({predicate}) OR week_start IS NULL")
    bronze = _week_counts(bronze_df, by_week)
    silver = _week_counts(delta_io.read(spark, table, settings).filter(predicate), by_week)
    quarantined = _week_counts(quarantine_df, by_week)
    status = _week_counts(statuses_df, by_week, STATUS)
    rows = []
    for (week,) in sorted(set(bronze) | set(silver) | set(quarantined), key=lambda k: (k[0] is not None, k[0])):
        row = {
            "table_name": table.name,
            "week_start": week,
            "bronze_rows": bronze.get((week,), 0),
            "silver_rows": silver.get((week,), 0),
            "quarantined": quarantined.get((week,), 0),
            "duplicates": status.get((week, "duplicate"), 0),
            "superseded": status.get((week, "superseded"), 0),
        }
        accounted = row["silver_rows"] + row["quarantined"] + row["duplicates"] + row["superseded"]
        rows.append({**row, "is_balanced": row["bronze_rows"] == accounted})
    return rows


def _write_conservation(spark: SparkSession, settings: Settings, rows: list[dict], predicate: str) -> None:
    contract = load_contract(CONSERVATION.contract)
    df = select_contract(
        spark.createDataFrame(
            rows,
            schema=(
                "table_name string, week_start date, bronze_rows bigint, silver_rows bigint, quarantined bigint, "
                "duplicates bigint, superseded bigint, is_balanced boolean"
            ),
        ),
        contract,
    )
    delta_io.replace_where(df, CONSERVATION, settings, predicate)
    unbalanced = [r for r in rows if not r["is_balanced"]]
    if unbalanced:
        raise DataError(f"row conservation failed for {len(unbalanced)} partition(s), first: {unbalanced[0]}")


def build_reference(spark: SparkSession, settings: Settings, bronze: Table, silver: Table) -> list[dict]:
    """Rebuild a reference table from all of its bronze rows: latest valid delivery wins per key."""
    contract = load_contract(silver.contract)
    bronze_df = delta_io.read(spark, bronze, settings)
    checked = bronze_df.transform(lambda df: with_quarantine_reason(df, contract))
    valid = checked.filter(F.col(REASON).isNull()).withColumn(KEY, record_key(contract)).transform(with_record_status)
    delta_io.overwrite(select_contract(valid.filter(F.col(STATUS) == "winner"), contract), silver, settings)
    quarantine_df = build_quarantine(checked.filter(F.col(REASON).isNotNull()), silver.name, bronze_df.columns)
    table_predicate = f"table_name = '{silver.name}'"
    delta_io.replace_where(quarantine_df, QUARANTINE, settings, table_predicate)
    rows = _conservation(spark, settings, silver, "true", bronze_df, valid)
    _write_conservation(spark, settings, rows, table_predicate)
    return rows


def build_silver_sales(spark: SparkSession, settings: Settings, first: date, last: date) -> list[dict]:
    """Rebuild silver sales (and their quarantine) for weeks [first, last], plus the undated bronze rows."""
    contract = load_contract(SILVER_SALES.contract)
    weeks = delta_io.week_predicate([(first, last)])
    bronze_df = delta_io.read(spark, BRONZE_SALES, settings).withColumn("week_start", F.expr(WEEK_OF_ROW))
    in_scope = F.expr(weeks) | F.col("week_start").isNull()
    references = {t.name: delta_io.read(spark, t, settings) for t in (SILVER_OUTLETS, SILVER_PRODUCTS)}
    checked = (
        bronze_df.transform(lambda df: with_reference_flags(df, contract, references))
        .transform(lambda df: with_quarantine_reason(df, contract))
        .withColumn(KEY, record_key(contract))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    valid = checked.filter(F.col(REASON).isNull())
    # Every version of a record seen in these weeks competes, even one delivered for another week.
    scope_keys = valid.filter(in_scope).select(KEY).distinct()
    statuses = (
        valid.join(scope_keys, on=KEY, how="left_semi")
        .transform(with_record_status)
        .filter(in_scope)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    delta_io.replace_where(
        select_contract(statuses.filter(F.col(STATUS) == "winner"), contract), SILVER_SALES, settings, weeks
    )
    quarantine_df = build_quarantine(
        checked.filter(in_scope & F.col(REASON).isNotNull()),
        SILVER_SALES.name,
        [c for c in bronze_df.columns if c != "week_start"],
    )
    scope_predicate = f"table_name = '{SILVER_SALES.name}' AND (({weeks}) OR week_start IS NULL)"
    delta_io.replace_where(quarantine_df, QUARANTINE, settings, scope_predicate)
    rows = _conservation(spark, settings, SILVER_SALES, weeks, bronze_df.filter(in_scope), statuses)
    _write_conservation(spark, settings, rows, scope_predicate)
    checked.unpersist()
    statuses.unpersist()
    return rows


def build_gold(spark: SparkSession, settings: Settings, first: date, last: date) -> None:
    """Weekly facts for [first, last], then the feature weeks those facts feed."""
    weeks = delta_io.week_predicate([(first, last)])
    silver_df = delta_io.read(spark, SILVER_SALES, settings).filter(weeks)
    delta_io.replace_where(
        build_sales_weekly(silver_df, load_contract(GOLD_SALES_WEEKLY.contract)),
        GOLD_SALES_WEEKLY,
        settings,
        weeks,
    )
    lo, hi = feature_input_weeks(first, last)
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings).filter(delta_io.week_predicate([(lo, hi)]))
    outlets_df = delta_io.read(spark, SILVER_OUTLETS, settings)
    products_df = delta_io.read(spark, SILVER_PRODUCTS, settings)
    affected = delta_io.week_predicate(affected_feature_weeks(first, last))
    features_df = build_features(weekly_df, outlets_df, products_df, load_contract(GOLD_FEATURES.contract))
    delta_io.replace_where(features_df.filter(affected), GOLD_FEATURES, settings, affected)


def build_weeks(spark: SparkSession, settings: Settings, first: date, last: date, progress: Progress) -> dict:
    """Reference tables, then silver sales and gold for the weeks; returns the conservation totals."""
    totals = {"bronze_rows": 0, "silver_rows": 0, "quarantined": 0, "duplicates": 0, "superseded": 0}
    for bronze, silver in ((BRONZE_OUTLETS, SILVER_OUTLETS), (BRONZE_PRODUCTS, SILVER_PRODUCTS)):
        build_reference(spark, settings, bronze, silver)
    rows = build_silver_sales(spark, settings, first, last)
    for row in rows:
        for key in totals:
            totals[key] += row[key]
    progress(f"silver weeks {first}..{last}: " + ", ".join(f"{k}={v}" for k, v in totals.items()))
    build_gold(spark, settings, first, last)
    progress(f"gold weeks {first}..{last} built")
    return totals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", type=iso_date, required=True, help="first day (its week is built)")
    parser.add_argument("--to", dest="last", type=iso_date, required=True, help="last day (its week is built)")


def run(args: argparse.Namespace) -> int:
    first, last = week_range(args.first, args.last)
    settings = load_settings()
    progress = Progress("build")
    spark = get_spark("lakehouse-build", settings)
    build_weeks(spark, settings, first, last, progress)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("build", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
