"""Quarantined rows by table and reason, and delivered files that were rejected."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.catalog import BRONZE_FILES, QUARANTINE
from lakehouse.config import load_settings
from lakehouse.runtime import run_main
from lakehouse.spark import get_spark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    spark = get_spark("lakehouse-quarantine", settings)
    reasons = []
    if delta_io.exists(spark, QUARANTINE, settings):
        counts = delta_io.count_by(delta_io.read(spark, QUARANTINE, settings), "table_name", "reason")
        reasons = [{"table": t, "reason": r, "rows": n} for (t, r), n in sorted(counts.items())]
    files = []
    if delta_io.exists(spark, BRONZE_FILES, settings):
        rejected = delta_io.read(spark, BRONZE_FILES, settings).filter(F.col("status") == "rejected")
        files = [
            {"kind": r["kind"], "file": r["_source_file"], "error": r["error"]}
            for r in rejected.orderBy("_source_file").collect()
        ]
    if args.json:
        print(json.dumps({"rows": reasons, "rejected_files": files}, indent=2))
        return 0
    print(f"{'table':<22}{'reason':<22}{'rows':>10}")
    for item in reasons:
        print(f"{item['table']:<22}{item['reason']:<22}{item['rows']:>10}")
    if not reasons:
        print("(no quarantined rows)")
    for item in files:
        print(f"rejected {item['kind']} file {item['file']}: {item['error']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("quarantine", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
