"""Ingest raw deliveries into bronze: as delivered plus metadata, schema evolving, idempotent per delivery."""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.errors import UsageError
from lakehouse.io.catalog import BRONZE_BY_KIND
from lakehouse.io.spark import get_spark
from lakehouse.medallion.deliveries import expand_uri_patterns
from lakehouse.medallion.ingest_flow import IngestResult, already_ingested, ingest_deliveries
from lakehouse.progress import Progress
from lakehouse.settings import load_settings
from lakehouse.weeks import utc_now

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
    Local paths come back absolute, resolved against this process's working directory: a Spark JVM that
    outlives one command (jobs run in-process, lakehouse.io.spark_jobs) resolves relative paths against
    the directory it started in.
    """
    out = []
    for source in sources:
        if "://" in source:  # expanded through Hadoop's FileSystem once Spark runs (expand_uri_patterns)
            out.append(source)
            continue
        matched = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
        if not matched:
            raise UsageError(f"--source {source} matches no delivery folder")
        out += [os.path.abspath(path) for path in matched]
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
    plan = [(kind, expand_uri_patterns(spark, sources)) for kind, sources in plan]
    for kind, sources in plan:
        _report(ingest_deliveries(spark, settings, sources, kind, utc_now()), kind, progress)
    return 0


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
