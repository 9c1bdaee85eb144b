"""Delta Lake reads and the three kinds of write the platform does: idempotent append, replace, overwrite."""

from __future__ import annotations

from datetime import date

import delta.exceptions.captured  # noqa: F401 - makes PySpark raise Delta's concurrency errors as their classes
from delta.exceptions import DeltaConcurrentModificationException
from delta.exceptions.base import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F

from lakehouse.io.catalog import Table
from lakehouse.settings import Settings

# A commit Delta refused because another writer committed to the same files first; re-reading and writing
# again is the way out (https://docs.delta.io/latest/concurrency-control.html).
CONCURRENT_WRITE = (
    DeltaConcurrentModificationException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
)


def exists(spark: SparkSession, table: Table, settings: Settings) -> bool:
    return DeltaTable.isDeltaTable(spark, table.path(settings))


def read(spark: SparkSession, table: Table, settings: Settings, version: int | None = None) -> DataFrame:
    """Read a table (optionally as of a version); a clear error if it was never written."""
    if not exists(spark, table, settings):
        raise FileNotFoundError(
            f"table {table.name} does not exist yet at {table.path(settings)}; "
            "run `lakehouse ingest` and `lakehouse build` first"
        )
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table.path(settings))


def version(spark: SparkSession, table: Table, settings: Settings) -> int:
    """The table's latest Delta version (read once, so a job can pin what it reads).

    Asked of the table's Delta log on the JVM (a snapshot update, ~0.01 s warm) rather than through
    `history(1)`, which runs a Spark job (~0.25 s) and a build asks five times (bench/RESULTS.md).
    """
    jvm = spark._jvm
    assert jvm is not None
    none = jvm.scala.Option.empty()
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, table.path(settings))
    latest = int(log.update(False, none, none).version())
    if latest < 0:
        raise FileNotFoundError(f"table {table.name} does not exist yet at {table.path(settings)}")
    return latest


def _writer(df: DataFrame, table: Table, mode: str) -> DataFrameWriter:
    """A Delta writer for the table; statistics columns take effect when the table is created."""
    writer = df.write.format("delta").mode(mode).partitionBy(*table.partition_by)
    if table.stats_columns:
        writer = writer.option("delta.dataSkippingStatsColumns", ",".join(table.stats_columns))
    return writer


def append_once(df: DataFrame, table: Table, settings: Settings, txn_app_id: str) -> None:
    """Append with schema evolution; a second append with the same `txn_app_id` is skipped by Delta."""
    (
        _writer(df, table, "append")
        .option("mergeSchema", "true")
        .option("txnAppId", txn_app_id)
        .option("txnVersion", 0)
        .save(table.path(settings))
    )


def replace_where(df: DataFrame, table: Table, settings: Settings, predicate: str) -> None:
    """Atomically replace the rows matching `predicate` with `df` (which must match it too).

    New columns evolve the schema, so a contract that adds a column takes effect on the next rebuild.
    """
    (
        _writer(df, table, "overwrite")
        .option("replaceWhere", predicate)
        .option("mergeSchema", "true")
        .save(table.path(settings))
    )


def holds(df: DataFrame, table: Table, settings: Settings, predicate: str, ignore: tuple[str, ...] = ()) -> bool:
    """True when the table's rows matching `predicate` are exactly `df`'s rows, apart from the `ignore`
    columns (ids that differ between two runs that computed the same: an MLflow run, an inputs id)."""
    spark = df.sparkSession
    if not exists(spark, table, settings):
        return False
    stored = read(spark, table, settings).filter(predicate)
    if set(stored.columns) != set(df.columns):
        return False  # the contract changed: write the rows in the new shape
    columns = [c for c in df.columns if c not in ignore]
    return fingerprint(stored.select(*columns)) == fingerprint(df.select(*columns))


def write_if_changed(
    df: DataFrame, table: Table, settings: Settings, predicate: str, ignore: tuple[str, ...] = ()
) -> bool:
    """Replace the rows matching `predicate` with `df` unless the table `holds` them already (then no new
    Delta version: re-running a job for the same period changes nothing); True when written."""
    if holds(df, table, settings, predicate, ignore):
        return False
    replace_where(df, table, settings, predicate)
    return True


def overwrite(df: DataFrame, table: Table, settings: Settings) -> None:
    """Replace the whole table, schema included (small reference tables rebuilt from bronze)."""
    _writer(df, table, "overwrite").option("overwriteSchema", "true").save(table.path(settings))


def week_predicate(ranges: list[tuple[date, date]], column: str = "week_start") -> str:
    """SQL predicate selecting the weeks of the given inclusive date ranges."""
    return " OR ".join(f"({column} >= '{lo.isoformat()}' AND {column} <= '{hi.isoformat()}')" for lo, hi in ranges)


def describe(spark: SparkSession, table: Table, settings: Settings) -> dict[str, object]:
    """Layer, path, Delta version, row count, columns and last write of a table (for `lakehouse tables`)."""
    info: dict[str, object] = {"table": table.name, "layer": table.layer, "path": table.path(settings)}
    if not exists(spark, table, settings):
        return {**info, "version": None, "rows": 0, "columns": [], "last_write": None}
    delta_table = DeltaTable.forPath(spark, table.path(settings))
    last = delta_table.history(1).select("version", "timestamp", "operation").first()
    df = delta_table.toDF()
    assert last is not None
    return {
        **info,
        "version": last["version"],
        "rows": df.count(),
        "columns": df.columns,
        "last_write": f"{last['timestamp'].isoformat(timespec='seconds')} {last['operation']}",
    }


def fingerprint(df: DataFrame) -> str:
    """An order-independent digest of a frame's content: row count and the sum of per-row hashes.

    Two Delta versions with the same rows (a rebuild that changed nothing) share a fingerprint.
    """
    row = df.agg(F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*df.columns).cast("decimal(38,0)")).alias("h")).first()
    assert row is not None
    return f"{row['n']}:{row['h']}"


def count_by(df: DataFrame, *columns: str) -> dict[tuple, int]:
    """Small group counts to the driver (bounded by the number of groups, not rows)."""
    return {tuple(r[c] for c in columns): r["n"] for r in df.groupBy(*columns).agg(F.count("*").alias("n")).collect()}
