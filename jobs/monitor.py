"""Monitor a week: Evidently drift and quality reports, data health, and the retraining decision.

The week's gold features are compared with the champion's reference (the last weeks of the data it
was trained on, at the Delta version it read). Figures go to gold_monitoring, HTML reports to
LAKEHOUSE_HOME/reports/<week>/ and to a monitoring run in MLflow, and a retraining request, when the
policy calls for one, to audit_retrain_requests. Re-running a week changes nothing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import iso_date, run_main
from lakehouse.io import tracking
from lakehouse.io.spark import get_spark
from lakehouse.monitoring.monitor_flow import monitor_week, retrain
from lakehouse.policy import load_ml_config
from lakehouse.progress import Progress
from lakehouse.settings import load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="week to monitor (any day of it; YYYY-MM-DD)")
    parser.add_argument(
        "--retrain", action="store_true", help="when the week has a retraining request, train (and gate) now"
    )


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    spark = get_spark("lakehouse-monitor", settings)
    tracking.configure(settings, config.registry.experiment)
    week = monday(args.week)
    decision, rid = monitor_week(spark, settings, config, week, Progress("monitor"))
    for label, value in decision.evidence.items():
        print(f"  {label}: {value}")
    print(f"week {week}: {decision.summary()}")
    if args.retrain and rid is not None:
        return retrain(spark, settings, config, rid)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("monitor", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
