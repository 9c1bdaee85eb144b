"""Measure the realised lift of a scored week once its actual sales have landed in gold.

Treated outlets (those that got recommendations) are compared with the experiment's holdout outlets,
per brand and overall, with a pre-period (CUPED) adjustment and a confidence interval. Re-measuring a
week replaces that week only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.catalog import GOLD_LIFT, GOLD_RECOMMENDATIONS, GOLD_SALES_WEEKLY
from lakehouse.config import Settings, load_settings
from lakehouse.contracts import load_contract
from lakehouse.lift import arm_moments, cuped_lift, outlet_outcomes
from lakehouse.ml_config import MLConfig, load_ml_config
from lakehouse.runtime import DataError, Progress, iso_date, monday, run_main
from lakehouse.schema import contract_ddl
from lakehouse.spark import get_spark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="scored week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--if-scored", action="store_true", help="do nothing (exit 0) when the week was not scored")


def measure_week(spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress) -> list:
    """Compute and write the week's lift rows (one per brand, plus ALL); returns them."""
    predicate = f"week_start = '{week.isoformat()}'"
    scored = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(predicate)
    first = scored.select("experiment", "model_version").first()
    if first is None:
        raise DataError(f"week {week} was not scored: run `lakehouse score --week {week}` first")
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings)
    if weekly_df.filter(predicate).limit(1).count() == 0:
        raise DataError(
            f"actual sales of week {week} have not landed in {GOLD_SALES_WEEKLY.name}: ingest and build that week first"
        )
    pre_weeks, confidence = config.experiment.pre_weeks, config.experiment.confidence
    moments = arm_moments(outlet_outcomes(scored, weekly_df, week, pre_weeks))
    lifts = cuped_lift(moments, confidence)
    if not lifts:
        raise DataError(f"week {week} has no brand with outlets in both the treated and the holdout group")
    fixed = {
        "week_start": week,
        "experiment": first["experiment"],
        "confidence": confidence,
        "pre_weeks": pre_weeks,
        "model_version": first["model_version"],
    }
    contract = load_contract(GOLD_LIFT.contract, settings.contracts_dir)
    rows = [tuple({**fixed, **lift}.get(c.name) for c in contract.columns) for lift in lifts]
    df = spark.createDataFrame(rows, schema=contract_ddl(contract))
    if _same_as_written(spark, settings, df, predicate):
        progress(f"kept week {week} in {GOLD_LIFT.name} (same result)")
    else:
        delta_io.replace_where(df.orderBy("brand"), GOLD_LIFT, settings, predicate)
        progress(f"wrote {len(rows)} lift rows for week {week} ({first['experiment']}) to {GOLD_LIFT.name}")
    return df.orderBy(F.col("brand") != "ALL", "brand").collect()


def _same_as_written(spark: SparkSession, settings: Settings, df: DataFrame, predicate: str) -> bool:
    """The week's lift rows are already in the table as computed (a re-run then writes no new version)."""
    if not delta_io.exists(spark, GOLD_LIFT, settings):
        return False
    written = delta_io.read(spark, GOLD_LIFT, settings).filter(predicate)
    return delta_io.fingerprint(written) == delta_io.fingerprint(df)


def was_scored(spark: SparkSession, settings: Settings, week: date) -> bool:
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        return False
    scored = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(F.col("week_start") == F.lit(week))
    return scored.limit(1).count() > 0


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
        print(
            f"  {r.brand}: {r.lift_units:+.2f} units per outlet, {level} CI {r.ci_low:+.2f} .. {r.ci_high:+.2f}{pct}; "
            f"{r.treated_outlets} treated vs {r.holdout_outlets} holdout outlets"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("lift", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
