"""Ingest raw deliveries into bronze: as delivered plus metadata, schema evolving, idempotent per delivery."""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.cli.args import run_main
from lakehouse.contracts.model import Contract, load_contract
from lakehouse.contracts.shape import select_contract
from lakehouse.errors import DeliveryError, UsageError
from lakehouse.io import delta_io
from lakehouse.io.catalog import BRONZE_BY_KIND, BRONZE_FILES, Table
from lakehouse.io.spark import get_spark
from lakehouse.medallion.bronze import type_conflicts, with_contract_types, with_ingest_metadata
from lakehouse.medallion.deliveries import (
    DeliveredFile,
    ReadResult,
    batch_id,
    list_delivery,
    list_local_delivery,
    read_files,
)
from lakehouse.progress import Progress
from lakehouse.settings import Settings, load_settings
from lakehouse.weeks import utc_now


@dataclass
class IngestResult:
    """What one delivery did to bronze."""

    source: str
    files: list[DeliveredFile]
    batch: str = ""
    skipped: bool = False
    rows: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


def ingested_batches(spark: SparkSession, settings: Settings, batches: list[str]) -> set[str]:
    """Which of these batch ids the ledger already holds (a small, bounded collect)."""
    if not delta_io.exists(spark, BRONZE_FILES, settings):
        return set()
    ledger = delta_io.read(spark, BRONZE_FILES, settings).filter(F.col("_batch_id").isin(batches))
    return {r["_batch_id"] for r in ledger.select("_batch_id").distinct().collect()}


def ingest_deliveries(
    spark: SparkSession, settings: Settings, sources: list[str], kind: str, ingested_at: datetime
) -> list[IngestResult]:
    """Land new deliveries in bronze in one atomic append; deliveries already in the ledger are skipped.

    Each delivery is its own batch. A type conflict refuses the command before anything is written.
    """
    table = BRONZE_BY_KIND[kind]
    contract = load_contract(table.contract)
    results = [IngestResult(source=s, files=list_delivery(spark, s)) for s in sources]
    for r in results:
        r.batch = batch_id(kind, r.files)
    seen = ingested_batches(spark, settings, [r.batch for r in results])
    new = []
    for r in results:  # a delivery named twice on one command line is ingested once
        r.skipped = r.batch in seen
        if not r.skipped:
            seen.add(r.batch)
            new.append(r)
    if not new:
        return results
    delivery_of = {f.path: r for r in new for f in r.files}
    read = read_files(spark, [f for r in new for f in r.files], contract)
    for path, error in read.rejected.items():
        delivery_of[path].rejected[path] = error
    # Delta skips a commit whose (txnAppId, txnVersion) it has seen: a retry after a crash between the
    # two appends below does not land the rows twice.
    txn = hashlib.sha256("|".join(r.batch for r in new).encode()).hexdigest()[:16]
    counts: dict[str, int] = {}
    if read.frames:
        rows_df = _bronze_rows(spark, table, settings, contract, read, delivery_of, ingested_at)
        delta_io.append_once(rows_df, table, settings, txn_app_id=f"ingest-{txn}")
        written = delta_io.read(spark, table, settings).filter(F.col("_batch_id").isin([r.batch for r in new]))
        counts = {path: n for (path,), n in delta_io.count_by(written, "_source_file").items()}
        for r in new:
            r.rows = sum(counts.get(f.path, 0) for f in r.files)
    ledger_df = _ledger_df(spark, new, kind, counts, ingested_at)
    delta_io.append_once(ledger_df, BRONZE_FILES, settings, txn_app_id=f"ledger-{txn}")
    return results


def _bronze_rows(
    spark: SparkSession,
    table: Table,
    settings: Settings,
    contract: Contract,
    read: ReadResult,
    delivery_of: dict[str, IngestResult],
    ingested_at: datetime,
) -> DataFrame:
    """Typed rows of all frames with their batch ids; a type conflict with the table refuses everything."""
    schema = delta_io.read(spark, table, settings).schema if delta_io.exists(spark, table, settings) else None
    typed = []
    for frame in read.frames:
        label = ", ".join(sorted({delivery_of[p].source for p in frame.paths}))
        rows_df = with_contract_types(frame.df, contract, label, typed=frame.typed)
        conflicts = type_conflicts(rows_df, schema) if schema is not None else []
        if conflicts:
            raise DeliveryError(f"delivery {label} refused for {table.name}: {'; '.join(conflicts)}")
        schema = _merged(schema, rows_df.schema)
        typed.append(rows_df)
    combined = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), typed)
    batch_of_file = spark.createDataFrame(
        [(path, r.batch) for path, r in delivery_of.items()], "_source_file string, _batch string"
    )
    combined = (
        combined.join(F.broadcast(batch_of_file), on="_source_file", how="left")
        .transform(lambda df: with_ingest_metadata(df, F.col("_batch"), ingested_at))
        .drop("_batch")
    )
    extras = tuple(c for c in combined.columns if c not in contract.column_names)
    return select_contract(combined, contract, extra=extras)


def _merged(schema: T.StructType | None, other: T.StructType) -> T.StructType:
    fields = {f.name: f for f in (schema.fields if schema else [])}
    for f in other.fields:
        fields.setdefault(f.name, f)
    return T.StructType(list(fields.values()))


def _ledger_df(
    spark: SparkSession, results: list[IngestResult], kind: str, counts: dict[str, int], ingested_at: datetime
) -> DataFrame:
    rows = [
        (
            r.batch,
            kind,
            r.source,
            f.path,
            f.file_format,
            f.size,
            "rejected" if f.path in r.rejected else "ingested",
            r.rejected.get(f.path),
            None if f.path in r.rejected else counts.get(f.path, 0),
            ingested_at,
        )
        for r in results
        for f in r.files
    ]
    return select_contract(
        spark.createDataFrame(
            rows,
            schema=(
                "_batch_id string, kind string, delivery string, _source_file string, file_format string, "
                "size_bytes bigint, status string, error string, rows bigint, _ingested_at timestamp"
            ),
        ),
        load_contract(BRONZE_FILES.contract),
    )


# A landing folder as providers fill it: reference data first (sales are checked against it), then sales weeks.
LANDING_LAYOUT = (("outlets", "outlets"), ("products", "products"), ("sales", "sales/week=*"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--source",
        nargs="+",
        metavar="PATH",
        help="delivery folder(s): local path (a glob pattern too) or s3a:// URI, CSV/JSONL/Parquet files inside",
    )
    what.add_argument(
        "--landing",
        metavar="PATH",
        help="a landing folder: its outlets/, products/ and sales/week=*/ deliveries, in that order",
    )
    parser.add_argument("--kind", choices=sorted(BRONZE_BY_KIND), default="sales", help="what --source holds")


def expand_sources(sources: list[str]) -> list[str]:
    """Local sources may be glob patterns (for schedulers that pass no shell): `.../sales/week=*`, sorted.

    A pattern that matches nothing is an error, so a wrong landing path does not pass as 'nothing new'.
    """
    out = []
    for source in sources:
        if "://" in source or not glob.has_magic(source):
            out.append(source)
            continue
        matched = sorted(glob.glob(source))
        if not matched:
            raise UsageError(f"--source {source} matches no delivery folder")
        out += matched
    return out


def run(args: argparse.Namespace) -> int:
    if args.landing:
        plan = [(kind, expand_sources([f"{args.landing.rstrip('/')}/{folder}"])) for kind, folder in LANDING_LAYOUT]
    else:
        plan = [(args.kind, expand_sources(args.source))]
    missing = [s for _, sources in plan for s in sources if "://" not in s and not os.path.exists(s)]
    if missing:
        raise UsageError(f"--source {missing[0]} does not exist")
    settings = load_settings()
    progress = Progress("ingest")
    known = already_ingested(settings, plan)
    if known is not None:  # nothing new landed: answered from the ledger's Delta log, no Spark session
        for kind, results in known:
            _report(results, kind, progress)
        return 0
    spark = get_spark("lakehouse-ingest", settings)
    for kind, sources in plan:
        _report(ingest_deliveries(spark, settings, sources, kind, utc_now()), kind, progress)
    return 0


def already_ingested(
    settings: Settings, plan: list[tuple[str, list[str]]]
) -> list[tuple[str, list[IngestResult]]] | None:
    """Without a JVM: when every delivery of the plan is a local folder whose batch the ledger holds, the
    skipped results per kind; otherwise None (then Spark lists, compares and ingests as always).

    The batch ids are the ones `list_delivery` gives (same paths, sizes and modification times), so a
    delivery whose files changed, or that Hadoop would list differently, is never taken for ingested."""
    from lakehouse.io import delta_log

    out: list[tuple[str, list[IngestResult]]] = []
    for kind, sources in plan:
        results = []
        for source in sources:
            files = list_local_delivery(source)
            if files is None:
                return None
            results.append(IngestResult(source=source, files=files, batch=batch_id(kind, files), skipped=True))
        out.append((kind, results))
    batches = sorted({r.batch for _, results in out for r in results})
    try:  # a shortcut only: any trouble reading the log (an object store delta-rs cannot reach) means Spark
        ledger = delta_log.open_table(BRONZE_FILES, settings)
        if ledger is None or not batches:
            return None
        held = ledger.to_pyarrow_table(columns=["_batch_id"], filters=[("_batch_id", "in", batches)])
    except Exception:
        return None
    return out if set(held.column("_batch_id").to_pylist()) >= set(batches) else None


def _report(results: list[IngestResult], kind: str, progress: Progress) -> None:
    for i, r in enumerate(results, start=1):
        state = "already ingested, skipped" if r.skipped else f"{r.rows} rows from {len(r.files)} file(s)"
        progress(f"{i}/{len(results)} {kind} {r.source} batch={r.batch}: {state}")
        for path, error in r.rejected.items():
            progress(f"  WARNING rejected file {path}: {error}")
    rejected = sum(len(r.rejected) for r in results)
    progress(f"done: {sum(r.rows for r in results)} rows into {BRONZE_BY_KIND[kind].name}, {rejected} file(s) rejected")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("ingest", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    from lakehouse.cli.main import exit_now  # a run answered from the ledger's log read it with delta-rs

    exit_now(main())
