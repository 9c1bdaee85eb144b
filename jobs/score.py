"""Score every active outlet x product for a target week with @champion and write one recommendation each.

The champion alias is resolved once to a version, written on every row with its run id and the Delta
version of the sales history the features came from. Re-scoring a week replaces that week only."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

from lakehouse.cli.args import count, iso_date, run_main
from lakehouse.io import tracking
from lakehouse.io.spark import get_spark
from lakehouse.policy import load_ml_config
from lakehouse.progress import Progress
from lakehouse.scoring import report
from lakehouse.scoring.score_flow import score_week
from lakehouse.settings import load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="target week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--top", type=count, default=10, help="print this many of the largest recommended lifts")


def print_top(recommendations: Any, top: int) -> None:
    """The largest recommended lifts (a bounded collect), printed as `lakehouse recommendations` does."""
    order = [F.desc(c) if how == "descending" else F.asc(c) for c, how in report.TOP_ORDER]
    rows = (
        recommendations.filter(F.col("action") != report.AS_PLANNED)
        .orderBy(*order)
        .select(*report.TOP_COLUMNS)
        .limit(top)
        .collect()
    )
    report.print_top_lifts(r.asDict() for r in rows)


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    spark = get_spark("lakehouse-score", settings)
    tracking.configure(settings, config.registry.experiment)
    week = monday(args.week)
    result = score_week(spark, settings, config, week, Progress("score"))
    if args.top > 0:
        print(f"top {args.top} recommended lifts for week {week}:")
        print_top(result["recommendations"], args.top)
    result["recommendations"].unpersist()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("score", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
