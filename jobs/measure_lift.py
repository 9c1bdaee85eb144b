"""Measure the realised lift of a scored week once its actual sales have landed in gold.

Treated outlets (those that got recommendations) are compared with the experiment's holdout outlets,
per brand and overall, with a pre-period (CUPED) adjustment and a confidence interval. Re-measuring a
week replaces that week only."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import iso_date, run_main
from lakehouse.io.spark import get_spark
from lakehouse.policy import load_ml_config
from lakehouse.progress import Progress
from lakehouse.scoring.lift_flow import measure_week, was_scored
from lakehouse.settings import load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="scored week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--if-scored", action="store_true", help="do nothing (exit 0) when the week was not scored")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    spark = get_spark("lakehouse-lift", settings)
    week = monday(args.week)
    if args.if_scored and not was_scored(spark, settings, week):
        print(f"week {week} was not scored: no lift to measure")
        return 0
    level = f"{config.experiment.confidence:.0%}"
    for r in measure_week(spark, settings, config, week, Progress("lift")):
        if r.lift_units is None:
            arms = f"{r.treated_outlets} treated, {r.holdout_outlets} holdout"
            print(f"  {r.brand}: too few outlets for an interval ({arms})")
            continue
        pct = (
            ""
            if r.lift_pct is None
            else f" ({r.lift_pct:+.1f}%, {level} CI {r.ci_low_pct:+.1f}% .. {r.ci_high_pct:+.1f}%)"
        )
        promise = (
            ""
            if r.predicted_lift_units is None
            else f"; promised {r.predicted_lift_units:+.2f} [{r.predicted_low:+.2f}, {r.predicted_high:+.2f}]"
            f" ({'kept' if r.promise_kept else 'not kept'})"
        )
        mde = "" if r.mde_units is None else f"; detectable from {r.mde_units:.2f}"
        print(
            f"  {r.brand}: {r.lift_units:+.2f} units per outlet, {level} CI {r.ci_low:+.2f} .. {r.ci_high:+.2f}{pct}; "
            f"{r.treated_outlets} treated vs {r.holdout_outlets} holdout outlets{promise}{mde}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lift", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
