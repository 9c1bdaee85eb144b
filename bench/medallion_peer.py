"""The medallion's peer: the same three tables written by hand, as a data engineer would without the platform.

From the same raw CSV files as `bench.medallion`: read and cast the sales, drop the rows the platform would
quarantine, keep one row per record (the last delivered file wins), write silver; sum it by outlet x product
x week, write the weekly facts; add the same lags, rolling means, competitor and season features, write gold.
Delta tables, partitioned by week as the platform's are. What it leaves out is what the platform adds: no
contracts, quarantine table, conservation counts, ingest ledger, lineage, idempotent re-runs or backfills.

The feature windows are the platform's own functions (`lakehouse.medallion.gold.with_history` and friends):
the comparison is about the guarantees around them, not about writing the same windows twice.
`duckdb_medallion` is the same silver and gold logic in DuckDB SQL over the same files, written as Parquet:
what a single-machine user would reach for (context in bench/RESULTS.md, no goal).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.medallion.gold import with_competition, with_history, with_season
from lakehouse.ml.model_inputs import OUTLET_ATTRIBUTES

TRUE_TEXT, FALSE_TEXT = ("1", "true", "t", "yes", "y"), ("0", "false", "f", "no", "n")
KEYS = ["outlet_id", "product_id", "sale_date"]
FLAGS = {"on_deal": "is_on_deal", "featured": "is_featured", "on_display": "has_display"}
WEEKLY_COLUMNS = [
    "outlet_id",
    "product_id",
    "week_start",
    "units",
    "revenue",
    "unit_price",
    "is_on_deal",
    "is_featured",
    "has_display",
    "n_records",
]
FEATURE_COLUMNS = [
    *["outlet_id", "product_id", "week_start", "brand", "manufacturer", "category", "channel", "region"],
    *["unit_price", "log_price", "price_index", "competitor_price_mean", "competitor_price_min"],
    *["price_vs_competitors", "competitor_deal_share", "is_on_deal", "is_featured", "has_display"],
    *["units_lag_1", "units_lag_2", "units_lag_52", "units_mean_4w", "price_mean_4w"],
    *["week_of_year", "month", "season_sin", "season_cos", *OUTLET_ATTRIBUTES, "pack_size", "units", "units_next_week"],
]


def _csv(spark: SparkSession, path: Path | str) -> DataFrame:
    return spark.read.option("header", True).csv(str(path))  # every column as text


def _number(column: str) -> F.Column:
    value = F.trim(F.col(column)).try_cast("double")
    return F.when(F.isnan(value) | (F.abs(value) == F.lit(float("inf"))), None).otherwise(value)


def _flag(column: str, df: DataFrame) -> F.Column:
    if column not in df.columns:
        return F.lit(False)
    text = F.lower(F.trim(F.col(column)))
    return F.coalesce(F.when(text.isin(*TRUE_TEXT), True).when(text.isin(*FALSE_TEXT), False), F.lit(False))


def outlets(spark: SparkSession, path: Path | str) -> DataFrame:
    raw = _csv(spark, path)
    numbers = [(_number(c) if c in raw.columns else F.lit(None).cast("double")).alias(c) for c in OUTLET_ATTRIBUTES]
    return raw.select("outlet_id", "channel", "region", *numbers).dropDuplicates(["outlet_id"])


def products(spark: SparkSession, path: Path | str) -> DataFrame:
    raw = _csv(spark, path)
    return raw.select("product_id", "brand", "manufacturer", "category", _number("pack_size").alias("pack_size"))


def silver_sales(sales: DataFrame, outlet_ids: DataFrame, product_ids: DataFrame, now: datetime) -> DataFrame:
    """Cast, drop what the platform would quarantine, keep the last delivered version of each record."""
    has_id = "record_id" in sales.columns
    typed = sales.select(
        F.trim("outlet_id").alias("outlet_id"),
        F.trim("product_id").alias("product_id"),
        F.to_date(F.try_to_timestamp(F.trim("sale_date"), F.lit("yyyy-MM-dd"))).alias("sale_date"),
        (F.col("record_id") if has_id else F.lit(None).cast("string")).alias("record_id"),
        _number("units").alias("units"),
        _number("unit_price").alias("unit_price"),
        *[_flag(raw, sales).alias(name) for raw, name in FLAGS.items()],
        F.col("_metadata.file_path").alias("_file"),
    )
    valid = typed.filter(
        (F.col("outlet_id") != "")
        & (F.col("product_id") != "")
        & (F.col("sale_date") <= F.lit(now.date()))
        & F.col("units").between(0, 1_000_000)
        & (F.col("unit_price") > 0)
        & (F.col("unit_price") <= 100_000)
    )
    known = valid.join(F.broadcast(outlet_ids), "outlet_id", "left_semi").join(
        F.broadcast(product_ids), "product_id", "left_semi"
    )
    key = F.coalesce(F.col("record_id"), F.concat_ws("|", *KEYS))
    last_first = Window.partitionBy(key).orderBy(F.col("_file").desc(), F.xxhash64(*typed.columns).desc())
    return (
        known.withColumn("_n", F.row_number().over(last_first))
        .filter("_n = 1")
        .drop("_n", "_file")
        .withColumn("week_start", F.to_date(F.date_trunc("week", "sale_date")))
    )


def sales_weekly(silver: DataFrame) -> DataFrame:
    weekly = silver.groupBy("outlet_id", "product_id", "week_start").agg(
        F.sum("units").alias("units"),
        F.sum(F.col("units") * F.col("unit_price")).alias("revenue"),
        F.avg("unit_price").alias("_mean_price"),
        *[F.bool_or(flag).alias(flag) for flag in FLAGS.values()],
        F.count(F.lit(1)).alias("n_records"),
    )
    price = F.round(F.when(F.col("units") > 0, F.col("revenue") / F.col("units")).otherwise(F.col("_mean_price")), 4)
    return weekly.withColumn("unit_price", price).select(*WEEKLY_COLUMNS)


def features(weekly: DataFrame, outlet_rows: DataFrame, product_rows: DataFrame) -> DataFrame:
    return (
        weekly.repartition("outlet_id")
        .join(F.broadcast(product_rows), "product_id", "left")
        .join(F.broadcast(outlet_rows), "outlet_id", "left")
        .transform(with_history)
        .transform(with_competition)
        .transform(with_season)
        .withColumn("log_price", F.log("unit_price"))
        .select(*FEATURE_COLUMNS)
    )


def _write(df: DataFrame, path: Path) -> None:
    df.write.format("delta").mode("overwrite").partitionBy("week_start").save(str(path))


def run(spark: SparkSession, raw: Path, out: Path, now: datetime) -> dict[str, float]:
    """Write the three tables under `out` from the raw folder (`sales/all`, `outlets`, `products`); seconds per
    stage (silver, gold: the weekly facts and the features)."""
    seconds = {}
    start = time.perf_counter()
    outlet_rows, product_rows = outlets(spark, raw / "outlets"), products(spark, raw / "products")
    silver = silver_sales(
        _csv(spark, raw / "sales" / "all"), outlet_rows.select("outlet_id"), product_rows.select("product_id"), now
    )
    _write(silver, out / "silver_sales")
    seconds["silver"] = time.perf_counter() - start
    start = time.perf_counter()
    _write(sales_weekly(spark.read.format("delta").load(str(out / "silver_sales"))), out / "gold_sales_weekly")
    weekly = spark.read.format("delta").load(str(out / "gold_sales_weekly"))
    _write(features(weekly, outlet_rows, product_rows), out / "gold_features")
    seconds["gold"] = time.perf_counter() - start
    return seconds


DUCKDB_SQL = """
CREATE TEMP TABLE outlets AS
  SELECT DISTINCT ON (outlet_id) * FROM read_csv(?, header = true, all_varchar = true);
CREATE TEMP TABLE products AS SELECT * FROM read_csv(?, header = true, all_varchar = true);
CREATE TEMP TABLE silver AS
WITH typed AS (
  SELECT trim(outlet_id) AS outlet_id, trim(product_id) AS product_id,
         try_strptime(trim(sale_date), '%Y-%m-%d')::DATE AS sale_date,
         TRY_CAST(trim(units) AS DOUBLE) AS units, TRY_CAST(trim(unit_price) AS DOUBLE) AS unit_price,
         coalesce(lower(trim(on_deal)) IN ('1', 'true', 't', 'yes', 'y'), false) AS is_on_deal,
         coalesce(lower(trim(featured)) IN ('1', 'true', 't', 'yes', 'y'), false) AS is_featured,
         coalesce(lower(trim(on_display)) IN ('1', 'true', 't', 'yes', 'y'), false) AS has_display,
         filename
  FROM read_csv(?, header = true, all_varchar = true, filename = true)
)
SELECT * EXCLUDE (filename), date_trunc('week', sale_date)::DATE AS week_start
FROM typed
WHERE outlet_id <> '' AND product_id <> '' AND sale_date <= current_date
  AND units BETWEEN 0 AND 1000000 AND isfinite(units)
  AND unit_price > 0 AND unit_price <= 100000 AND isfinite(unit_price)
  AND outlet_id IN (SELECT outlet_id FROM outlets) AND product_id IN (SELECT product_id FROM products)
QUALIFY row_number() OVER (PARTITION BY outlet_id, product_id, sale_date ORDER BY filename DESC) = 1;
CREATE TEMP TABLE weekly AS
SELECT outlet_id, product_id, week_start, sum(units) AS units, sum(units * unit_price) AS revenue,
       round(CASE WHEN sum(units) > 0 THEN sum(units * unit_price) / sum(units) ELSE avg(unit_price) END, 4)
         AS unit_price,
       bool_or(is_on_deal) AS is_on_deal, bool_or(is_featured) AS is_featured, bool_or(has_display) AS has_display,
       count(*) AS n_records
FROM silver GROUP BY ALL;
CREATE TEMP TABLE features AS
WITH w AS (
  SELECT weekly.*, p.brand, p.manufacturer, p.category, TRY_CAST(p.pack_size AS DOUBLE) AS pack_size,
         o.channel, o.region, TRY_CAST(o.income AS DOUBLE) AS income,
         (datediff('day', DATE '1970-01-05', week_start) // 7) AS wk
  FROM weekly LEFT JOIN products p USING (product_id) LEFT JOIN outlets o USING (outlet_id)
)
SELECT *,
  max(units) OVER (item RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING) AS units_lag_1,
  max(units) OVER (item RANGE BETWEEN 2 PRECEDING AND 2 PRECEDING) AS units_lag_2,
  max(units) OVER (item RANGE BETWEEN 52 PRECEDING AND 52 PRECEDING) AS units_lag_52,
  avg(units) OVER (item RANGE BETWEEN 4 PRECEDING AND 1 PRECEDING) AS units_mean_4w,
  avg(unit_price) OVER (item RANGE BETWEEN 4 PRECEDING AND 1 PRECEDING) AS price_mean_4w,
  max(units) OVER (item RANGE BETWEEN 1 FOLLOWING AND 1 FOLLOWING) AS units_next_week,
  unit_price / avg(unit_price) OVER shelf AS price_index,
  (sum(unit_price) OVER shelf - unit_price) / nullif(count(*) OVER shelf - 1, 0) AS competitor_price_mean,
  (sum(is_on_deal::INT) OVER shelf - is_on_deal::INT) / nullif(count(*) OVER shelf - 1, 0)
    AS competitor_deal_share,
  weekofyear(week_start) AS week_of_year, month(week_start) AS month,
  sin(2 * pi() * dayofyear(week_start) / 365.25) AS season_sin,
  cos(2 * pi() * dayofyear(week_start) / 365.25) AS season_cos,
  ln(unit_price) AS log_price
FROM w
WINDOW item AS (PARTITION BY outlet_id, product_id ORDER BY wk),
       shelf AS (PARTITION BY outlet_id, category, week_start);
"""


def duckdb_medallion(raw: Path, out: Path) -> dict[str, float]:
    """The same silver and gold logic in DuckDB SQL (the minimum competitor price left out), written as Parquet;
    seconds per stage."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    db = duckdb.connect()
    statements = [s for s in DUCKDB_SQL.split(";") if s.strip()]
    files = [str(raw / "outlets" / "*.csv"), str(raw / "products" / "*.csv"), str(raw / "sales" / "all" / "*.csv")]
    seconds = {}
    start = time.perf_counter()
    db.execute(statements[0], [files[0]])
    db.execute(statements[1], [files[1]])
    db.execute(statements[2], [files[2]])
    db.execute(f"COPY silver TO '{out / 'silver_sales'}' (FORMAT parquet, PARTITION_BY (week_start))")
    seconds["silver"] = time.perf_counter() - start
    start = time.perf_counter()
    db.execute(statements[3])
    db.execute(f"COPY weekly TO '{out / 'gold_sales_weekly'}' (FORMAT parquet, PARTITION_BY (week_start))")
    db.execute(statements[4])
    db.execute(f"COPY features TO '{out / 'gold_features'}' (FORMAT parquet, PARTITION_BY (week_start))")
    seconds["gold"] = time.perf_counter() - start
    db.close()
    return seconds
