"""Print the largest recommended lifts of a scored week (by default the latest week in gold_recommendations)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pyarrow.compute as pc

from lakehouse.cli.args import count, iso_date, run_main
from lakehouse.errors import DataError
from lakehouse.io import delta_log
from lakehouse.io.catalog import GOLD_RECOMMENDATIONS
from lakehouse.scoring import report
from lakehouse.settings import load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, help="a day of the scored week (default: the latest scored week)")
    parser.add_argument("--top", type=count, default=10, help="how many recommendations to print (default 10)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    recommendations = delta_log.open_table(GOLD_RECOMMENDATIONS, settings)
    if recommendations is None:
        raise DataError("no week has been scored yet: run `lakehouse score --week W` first")
    week = monday(args.week) if args.week else delta_log.latest_partition(recommendations, "week_start")
    # One week's partition, and only the printed columns: a few thousand rows at most.
    rows = delta_log.snapshot_arrow(
        recommendations, columns=list(report.TOP_COLUMNS), filters=[("week_start", "=", week)]
    )
    recommended = rows.filter(pc.field("action") != report.AS_PLANNED).num_rows
    print(f"week {week}: {recommended} of {rows.num_rows} outlet x product pairs have an action; top {args.top}:")
    report.print_top_lifts(report.top_lifts(rows, args.top))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("recommendations", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
