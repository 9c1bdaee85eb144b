"""Print the largest recommended lifts of a scored week (by default the latest week in gold_recommendations)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pyspark.sql import functions as F

from jobs.score import print_top
from lakehouse import delta_io
from lakehouse.catalog import GOLD_RECOMMENDATIONS
from lakehouse.config import load_settings
from lakehouse.runtime import DataError, iso_date, monday, run_main
from lakehouse.spark import get_spark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, help="a day of the scored week (default: the latest scored week)")
    parser.add_argument("--top", type=int, default=10, help="how many recommendations to print (default 10)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    spark = get_spark("lakehouse-recommendations", settings)
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        raise DataError("no week has been scored yet: run `lakehouse score --week W` first")
    table = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings)
    week = monday(args.week) if args.week else table.agg(F.max("week_start")).first()[0]
    rows = table.filter(F.col("week_start") == F.lit(week))
    recommended = rows.filter(F.col("action") != "as_planned").count()
    print(f"week {week}: {recommended} of {rows.count()} outlet x product pairs have an action; top {args.top}:")
    print_top(rows, args.top)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("recommendations", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
