"""Deliveries into bronze (`lakehouse ingest`): each delivery folder is one batch, appended to its bronze
table with the ingest metadata and recorded in the bronze_files ledger; a batch the ledger holds is
skipped, and a file that cannot be read is rejected with its reason, never dropped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.contracts.model import Contract, load_contract
from lakehouse.contracts.shape import rows_to_df, select_contract
from lakehouse.errors import DeliveryError
from lakehouse.io import delta_io
from lakehouse.io.catalog import BRONZE_BY_KIND, BRONZE_FILES, Table
from lakehouse.medallion.bronze import type_conflicts, with_contract_types, with_ingest_metadata, with_table_types
from lakehouse.medallion.deliveries import (
    DeliveredFile,
    ReadResult,
    batch_id,
    list_delivery,
    list_local_delivery,
    read_files,
)
from lakehouse.settings import Settings


@dataclass
class IngestResult:
    """What one delivery did to bronze."""

    source: str
    files: list[DeliveredFile]
    batch: str = ""
    skipped: bool = False
    rows: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # per file: columns cast to (or rescued from) bronze's types


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
    """Typed rows of all frames with their batch ids; a contract column whose type conflicts with the table
    refuses everything, other columns take the table's type (`with_table_types`, noted on their files)."""
    schema = delta_io.read(spark, table, settings).schema if delta_io.exists(spark, table, settings) else None
    typed = []
    for frame in read.frames:
        label = ", ".join(sorted({delivery_of[p].source for p in frame.paths}))
        rows_df = with_contract_types(frame.df, contract, label, typed=frame.typed)
        if schema is not None:
            rows_df, notes = with_table_types(rows_df, schema, contract)
            for path in frame.paths if notes else ():
                delivery_of[path].notes[path] = "; ".join(notes)
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
        {
            "_batch_id": r.batch,
            "kind": kind,
            "delivery": r.source,
            "_source_file": f.path,
            "file_format": f.file_format,
            "size_bytes": f.size,
            "status": "rejected" if f.path in r.rejected else "ingested",
            "error": r.rejected.get(f.path),
            "notes": r.notes.get(f.path),
            "rows": None if f.path in r.rejected else counts.get(f.path, 0),
            "_ingested_at": ingested_at,
        }
        for r in results
        for f in r.files
    ]
    return rows_to_df(spark, load_contract(BRONZE_FILES.contract), rows)


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
