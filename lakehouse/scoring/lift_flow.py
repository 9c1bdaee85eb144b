"""Measuring a scored week's lift (`lakehouse lift`): treated outlets against the holdout, CUPED-adjusted,
with the interval and the promise it is checked against, written to gold_lift."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import rows_to_df
from lakehouse.errors import DataError
from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_LIFT, GOLD_RECOMMENDATIONS, GOLD_SALES_WEEKLY
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.policy import MLConfig
from lakehouse.progress import Progress
from lakehouse.scoring.lift import against_promise, arm_moments, cuped_lift, outlet_outcomes, promised
from lakehouse.settings import Settings

# The code a week's lift is a function of.
LIFT_CODE = ("lakehouse.scoring.lift_flow", "lakehouse.scoring.lift")


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
    df = rows_to_df(spark, contract, [{**fixed, **lift} for lift in lifts]).orderBy("brand")
    # Reached only when the week's inputs changed: the rows are written with the new `inputs` id even when the
    # figures did not change, so the next run finds the week measured from these inputs.
    if not delta_io.write_if_changed(df, GOLD_LIFT, settings, predicate):
        progress(f"kept week {week} in {GOLD_LIFT.name} (same result)")
    else:
        progress(f"wrote {len(lifts)} lift rows for week {week} ({first['experiment']}) to {GOLD_LIFT.name}")
    return df.orderBy(F.col("brand") != "ALL", "brand").collect()


def was_scored(spark: SparkSession, settings: Settings, week: date) -> bool:
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        return False
    scored = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(F.col("week_start") == F.lit(week))
    return scored.limit(1).count() > 0
