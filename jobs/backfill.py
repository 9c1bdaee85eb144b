"""Rebuild silver and gold for a range of weeks from bronze, in chunks (e.g. after a contract adds a column).

The result is the same as building the weeks one by one; re-running it changes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta

from lakehouse.cli.args import iso_date, run_main
from lakehouse.io.spark import get_spark
from lakehouse.medallion.build_flow import build_weeks
from lakehouse.progress import Progress
from lakehouse.settings import load_settings
from lakehouse.weeks import week_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", type=iso_date, required=True, help="first day (its week is rebuilt)")
    parser.add_argument("--to", dest="last", type=iso_date, required=True, help="last day (its week is rebuilt)")
    parser.add_argument("--force", action="store_true", help="rebuild weeks even when their inputs did not change")
    parser.add_argument("--chunk-weeks", type=int, default=26, help="weeks rebuilt per pass (default 26)")


def run(args: argparse.Namespace) -> int:
    first, last = week_range(args.first, args.last)
    settings = load_settings()
    progress = Progress("backfill")
    spark = get_spark("lakehouse-backfill", settings)
    start, chunk = first, timedelta(weeks=max(1, args.chunk_weeks))
    while start <= last:
        end = min(start + chunk - timedelta(weeks=1), last)
        build_weeks(spark, settings, start, end, progress, force=args.force)
        start = end + timedelta(weeks=1)
    progress(f"done: weeks {first}..{last}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("backfill", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
