"""Build silver and gold for a range of weeks from what bronze holds; idempotent per week."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import iso_date, run_main
from lakehouse.io.spark import get_spark
from lakehouse.medallion.build_flow import build_weeks
from lakehouse.progress import Progress
from lakehouse.settings import load_settings
from lakehouse.weeks import week_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="first", type=iso_date, required=True, help="first day (its week is built)")
    parser.add_argument("--to", dest="last", type=iso_date, required=True, help="last day (its week is built)")
    parser.add_argument("--force", action="store_true", help="rebuild weeks even when their inputs did not change")


def run(args: argparse.Namespace) -> int:
    first, last = week_range(args.first, args.last)
    settings = load_settings()
    progress = Progress("build")
    spark = get_spark("lakehouse-build", settings)
    build_weeks(spark, settings, first, last, progress, force=args.force)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("build", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
