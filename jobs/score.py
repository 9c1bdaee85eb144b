"""Score every active outlet x product for a target week with @champion and write one recommendation each.

The champion alias is resolved once to a version, written on every row with its run id and the Delta
version of the sales history the features came from. Re-scoring a week replaces that week only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io, registry, tracking
from lakehouse.catalog import GOLD_FEATURES, GOLD_RECOMMENDATIONS, GOLD_SALES_WEEKLY, SILVER_OUTLETS, SILVER_PRODUCTS
from lakehouse.config import Settings, load_settings
from lakehouse.contracts import load_contract
from lakehouse.ml_config import MLConfig, load_ml_config
from lakehouse.runtime import DataError, Progress, iso_date, monday, run_main
from lakehouse.schema import select_contract
from lakehouse.scoring import Rules, build_scoring_rows, coverage, in_holdout, recommend, score_candidates
from lakehouse.spark import get_spark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="target week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--top", type=int, default=10, help="print this many of the largest recommended lifts")


def champion(name: str) -> Any:
    """The model version @champion points to now (resolved once; scoring then uses that version)."""
    from mlflow.exceptions import MlflowException

    try:
        return registry.client().get_model_version_by_alias(name, registry.CHAMPION)
    except MlflowException:
        raise DataError(
            f"model {name!r} has no @champion: run `lakehouse train` (or `lakehouse models promote`) first"
        ) from None


def score_week(spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress) -> dict:
    """Build the week's scoring rows, score every candidate action, choose, check coverage and write."""
    import mlflow.spark

    name = config.registry.model_name
    version = champion(name)
    model = mlflow.spark.load_model(f"models:/{name}/{version.version}")
    progress(f"scoring week {week} with {name} version {version.version} (@champion, run {version.run_id})")

    weekly_version = delta_io.version(spark, GOLD_SALES_WEEKLY, settings)
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings, weekly_version)
    products_df = delta_io.read(spark, SILVER_PRODUCTS, settings)
    rows = build_scoring_rows(
        weekly_df,
        delta_io.read(spark, SILVER_OUTLETS, settings),
        products_df,
        load_contract(GOLD_FEATURES.contract, settings.contracts_dir),
        week,
        config.scoring.active_weeks,
    )
    costs = products_df.select(
        "product_id",
        F.col("unit_cost").cast("double")
        if "unit_cost" in products_df.columns
        else F.lit(None).cast("double").alias("unit_cost"),
    )
    experiment = config.experiment
    rows = (
        rows.join(F.broadcast(costs), on="product_id", how="left")
        .withColumn("in_holdout", in_holdout(experiment.name, experiment.holdout_share))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    expected = rows.count()
    if expected == 0:
        raise DataError(
            f"no outlet x product sold in the {config.scoring.active_weeks} weeks before {week}: "
            "ingest and build those weeks first"
        )
    actions = config.scoring.candidate_actions()
    progress(f"{expected} active outlet x product, {len(actions)} candidate actions each")
    scored = score_candidates(model, rows, actions)
    rules = Rules(config.scoring.max_discount, config.scoring.max_promoted_per_outlet, config.scoring.min_lift_pct)
    contract = load_contract(GOLD_RECOMMENDATIONS.contract, settings.contracts_dir)
    recommendations = select_contract(
        recommend(scored, actions, rules)
        .withColumn("experiment", F.lit(experiment.name))
        .withColumn("model_name", F.lit(name))
        .withColumn("model_version", F.lit(str(version.version)))
        .withColumn("model_run_id", F.lit(version.run_id))
        .withColumn("features_version", F.lit(weekly_version)),
        contract,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    counts = coverage(recommendations, expected)  # fails the job before anything is written
    predicate = f"week_start = '{week.isoformat()}'"
    unchanged = _already_scored(spark, settings, recommendations, predicate)
    if not unchanged:
        delta_io.replace_where(recommendations, GOLD_RECOMMENDATIONS, settings, predicate)
    rows.unpersist()
    progress(
        f"{'kept (same result)' if unchanged else 'wrote'} {counts['rows']} recommendations for week {week} "
        f"in {GOLD_RECOMMENDATIONS.name}: "
        f"{counts['recommended']} with an action, {counts['holdout_items']} in the holdout"
    )
    return {**counts, "recommendations": recommendations}


def _already_scored(spark: SparkSession, settings: Settings, recommendations: DataFrame, predicate: str) -> bool:
    """True when the week's rows already equal these, apart from the sales history's Delta version.

    A rebuild that changed nothing writes a new version of gold_sales_weekly; re-scoring on it must
    not rewrite the week (the rows keep pointing at the earlier, identical version).
    """
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        return False
    existing = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(predicate)
    columns = [c for c in recommendations.columns if c != "features_version"]
    if set(existing.columns) != set(recommendations.columns):
        return False
    return delta_io.fingerprint(existing.select(*columns)) == delta_io.fingerprint(recommendations.select(*columns))


def print_top(recommendations: Any, top: int) -> None:
    """The largest recommended lifts (a bounded collect)."""
    rows = (
        recommendations.filter(F.col("action") != "as_planned")
        .orderBy(F.desc("lift_units"), "outlet_id", "product_id")
        .select("outlet_id", "product_id", "brand", "action", "lift_units", "lift_pct", "incremental_margin")
        .limit(top)
        .collect()
    )
    for r in rows:
        margin = "" if r.incremental_margin is None else f", margin {r.incremental_margin:+.2f}"
        lift = f"+{r.lift_units:.1f} units ({r.lift_pct:+.1f}%)"
        print(f"  {r.outlet_id} {r.product_id} ({r.brand}): {r.action} {lift}{margin}")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    spark = get_spark("lakehouse-score", settings)
    tracking.configure(settings, config.registry.experiment, dict(os.environ))
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
