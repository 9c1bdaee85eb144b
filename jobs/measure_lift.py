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

from lakehouse.cli.args import iso_date, run_main
from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import contract_ddl
from lakehouse.errors import DataError
from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_LIFT, GOLD_RECOMMENDATIONS, GOLD_SALES_WEEKLY
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.io.spark import get_spark
from lakehouse.policy import MLConfig, load_ml_config
from lakehouse.progress import Progress
from lakehouse.scoring.lift import against_promise, arm_moments, cuped_lift, outlet_outcomes, promised
from lakehouse.settings import Settings, load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="scored week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--if-scored", action="store_true", help="do nothing (exit 0) when the week was not scored")


# The code a week's lift is a function of.
LIFT_CODE = ("jobs.measure_lift", "lakehouse.scoring.lift")


def lift_inputs(spark: SparkSession, settings: Settings, config: MLConfig, week: date, scored: DataFrame) -> str:
    """Everything a week's lift is a function of, as one id (`inputs` on its rows): what the week was
    scored from (the recommendations' own `inputs`), the sales history's version, config, contracts, code."""
    has_ids = "inputs" in scored.columns
    scored_from = sorted(str(r["inputs"]) for r in scored.select("inputs").distinct().collect()) if has_ids else []
    if not scored_from or "None" in scored_from:  # scored before recommendations had ids: the table's version
        scored_from = [f"v{delta_io.version(spark, GOLD_RECOMMENDATIONS, settings)}"]
    parts = {
        "week": week,
        "scored": scored_from,
        "sales": delta_io.version(spark, GOLD_SALES_WEEKLY, settings),
        "config": config.experiment,
        "contracts": {t.name: load_contract(t.contract).version for t in (GOLD_RECOMMENDATIONS, GOLD_LIFT)},
        "code": code_id(LIFT_CODE),
    }
    return inputs_id(parts)


def _stored(spark: SparkSession, settings: Settings, predicate: str) -> DataFrame | None:
    if not delta_io.exists(spark, GOLD_LIFT, settings):
        return None
    return delta_io.read(spark, GOLD_LIFT, settings).filter(predicate)


def measure_week(spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress) -> list:
    """Compute and write the week's lift rows (one per brand, plus ALL); returns them.

    A week measured from the same inputs (`lift_inputs`) is read back, not recomputed.
    """
    predicate = f"week_start = '{week.isoformat()}'"
    scored = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(predicate)
    first = scored.select("experiment", "model_version").first()
    if first is None:
        raise DataError(f"week {week} was not scored: run `lakehouse score --week {week}` first")
    inputs = lift_inputs(spark, settings, config, week, scored)
    stored = _stored(spark, settings, predicate)
    if stored is not None and "inputs" in stored.columns:
        if {r["inputs"] for r in stored.select("inputs").distinct().collect()} == {inputs}:
            progress(f"kept week {week} in {GOLD_LIFT.name}: measured from the same inputs (id {inputs})")
            return stored.orderBy(F.col("brand") != "ALL", "brand").collect()
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings)
    if weekly_df.filter(predicate).limit(1).count() == 0:
        raise DataError(
            f"actual sales of week {week} have not landed in {GOLD_SALES_WEEKLY.name}: ingest and build that week first"
        )
    pre_weeks, confidence = config.experiment.pre_weeks, config.experiment.confidence
    moments = arm_moments(outlet_outcomes(scored, weekly_df, week, pre_weeks))
    lifts = cuped_lift(moments, confidence, config.experiment.power)
    if not lifts:
        raise DataError(f"week {week} has no brand with outlets in both the treated and the holdout group")
    promises = promised(scored, week) if "lift_pct_low" in scored.columns else {}
    lifts = [lift | against_promise(lift, promises.get(lift["brand"])) for lift in lifts]
    fixed = {
        "week_start": week,
        "experiment": first["experiment"],
        "confidence": confidence,
        "pre_weeks": pre_weeks,
        "model_version": first["model_version"],
        "inputs": inputs,
    }
    contract = load_contract(GOLD_LIFT.contract, settings.contracts_dir)
    rows = [tuple({**fixed, **lift}.get(c.name) for c in contract.columns) for lift in lifts]
    df = spark.createDataFrame(rows, schema=contract_ddl(contract))
    if stored is not None and _same_as_written(stored, df):
        progress(f"kept week {week} in {GOLD_LIFT.name} (same result)")
    else:
        delta_io.replace_where(df.orderBy("brand"), GOLD_LIFT, settings, predicate)
        progress(f"wrote {len(rows)} lift rows for week {week} ({first['experiment']}) to {GOLD_LIFT.name}")
    return df.orderBy(F.col("brand") != "ALL", "brand").collect()


def _same_as_written(written: DataFrame, df: DataFrame) -> bool:
    """The week's lift rows are already in the table as computed, whatever their inputs id (a re-run then
    writes no new version)."""
    columns = [c for c in df.columns if c != "inputs"]
    if not set(columns) <= set(written.columns):
        return False
    return delta_io.fingerprint(written.select(*columns)) == delta_io.fingerprint(df.select(*columns))


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
