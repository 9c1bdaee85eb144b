"""Quarantined rows by table and reason, and delivered files that were rejected."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.io import delta_log
from lakehouse.io.catalog import BRONZE_FILES, QUARANTINE
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    reasons = []
    if delta_log.exists(QUARANTINE, settings):
        quarantined = delta_log.read_arrow(QUARANTINE, settings, columns=["table_name", "reason"])
        groups = quarantined.group_by(["table_name", "reason"]).aggregate([([], "count_all")]).to_pylist()
        groups.sort(key=lambda g: (g["table_name"], g["reason"]))
        reasons = [{"table": g["table_name"], "reason": g["reason"], "rows": g["count_all"]} for g in groups]
    files = []
    if delta_log.exists(BRONZE_FILES, settings):
        columns = ["kind", "_source_file", "error"]
        rejected = delta_log.read_arrow(BRONZE_FILES, settings, columns, [("status", "=", "rejected")]).to_pylist()
        # By file, a missing name first, as Spark's ascending order puts nulls.
        rejected.sort(key=lambda r: (r["_source_file"] is not None, r["_source_file"] or ""))
        files = [{"kind": r["kind"], "file": r["_source_file"], "error": r["error"]} for r in rejected]
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
