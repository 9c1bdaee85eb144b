"""Score every active outlet x product for a target week with @champion and write one recommendation each.

The champion alias is resolved once to a version, written on every row with its run id and the Delta
version of the sales history the features came from. Re-scoring a week replaces that week only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.cli.args import count, iso_date, run_main
from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import select_contract
from lakehouse.errors import DataError
from lakehouse.io import delta_io, tracking
from lakehouse.io.catalog import (
    GOLD_BACKTEST,
    GOLD_EFFECTS,
    GOLD_FEATURES,
    GOLD_RECOMMENDATIONS,
    GOLD_SALES_WEEKLY,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    Table,
)
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.io.spark import get_spark
from lakehouse.medallion.gold import LOOKBACK_WEEKS
from lakehouse.ml import registry
from lakehouse.ml.modeling import PREDICTION, predict
from lakehouse.policy import MLConfig, load_ml_config
from lakehouse.progress import Progress
from lakehouse.scoring import report
from lakehouse.scoring.lifts import EffectBook
from lakehouse.scoring.prices import promotion_cuts, with_typical_cuts
from lakehouse.scoring.recommend import Rules, coverage, promotion_states, recommend, summary
from lakehouse.scoring.rows import build_scoring_rows, in_holdout
from lakehouse.settings import Settings, load_settings
from lakehouse.weeks import monday


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--week", type=iso_date, required=True, help="target week (any day of it; YYYY-MM-DD)")
    parser.add_argument("--top", type=count, default=10, help="print this many of the largest recommended lifts")


def champion(name: str) -> Any:
    """The model version @champion points to now (resolved once; scoring then uses that version)."""
    from mlflow.exceptions import MlflowException

    try:
        return registry.client().get_model_version_by_alias(name, registry.CHAMPION)
    except MlflowException:
        raise DataError(
            f"model {name!r} has no @champion: run `lakehouse train` (or `lakehouse models promote`) first"
        ) from None


# The code a scored week is a function of (with the champion's own pipeline, named by its version).
SCORE_CODE = (
    "jobs.score",
    "lakehouse.scoring.rows",
    "lakehouse.scoring.prices",
    "lakehouse.scoring.lifts",
    "lakehouse.scoring.recommend",
    "lakehouse.ml.model_inputs",
    "lakehouse.policy",
    "lakehouse.medallion.gold",
)
# The tables scoring reads; their Delta versions are part of a week's inputs.
SCORE_TABLES = (GOLD_SALES_WEEKLY, SILVER_OUTLETS, SILVER_PRODUCTS, GOLD_EFFECTS, GOLD_BACKTEST)


def score_inputs(
    spark: SparkSession, settings: Settings, config: MLConfig, week: date, version: Any
) -> tuple[str, dict[str, int]]:
    """Everything a week's recommendations are a function of, as one id (`inputs` on every row), and the
    Delta versions of the tables it read (scoring reads those versions)."""
    tables = {t.name: delta_io.version(spark, t, settings) for t in SCORE_TABLES if delta_io.exists(spark, t, settings)}
    parts = {
        "week": week,
        "model": f"{version.name}/{version.version}/{version.run_id}",
        "tables": tables,
        "contracts": {
            t.name: load_contract(t.contract, settings.contracts_dir).version
            for t in (GOLD_FEATURES, GOLD_RECOMMENDATIONS)
        },
        "config": {"scoring": config.scoring, "experiment": config.experiment, "confidence": config.effects.confidence},
        "code": code_id(SCORE_CODE),
    }
    return inputs_id(parts), tables


def effect_book(spark: SparkSession, settings: Settings, name: str, version: str, tables: dict[str, int]) -> EffectBook:
    """The double-ML effects of the model version and its back-test (the versions in `tables`; none when absent)."""

    def of_version(table: Table) -> list[dict[str, Any]]:
        if table.name not in tables:
            return []
        rows = delta_io.read(spark, table, settings, tables[table.name]).filter(
            (F.col("model_name") == F.lit(name)) & (F.col("model_version") == F.lit(version))
        )
        return [r.asDict() for r in rows.collect()]

    return EffectBook.of(version, of_version(GOLD_EFFECTS)).with_backtest(of_version(GOLD_BACKTEST))


def _scored_from(spark: SparkSession, settings: Settings, week: date) -> set[str | None]:
    """The `inputs` ids of the week's stored recommendations (empty when the week was never scored)."""
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        return set()
    week_df = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(F.col("week_start") == F.lit(week))
    if "inputs" not in week_df.columns:
        return {None}
    return {r["inputs"] for r in week_df.select("inputs").distinct().collect()}


def score_week(spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress) -> dict:
    """Build the week's scoring rows, score every candidate action, choose, check coverage and write.

    A week already scored from the same inputs (`score_inputs`) is read back, not recomputed.
    """
    name = config.registry.model_name
    version = champion(name)
    inputs, tables = score_inputs(spark, settings, config, week, version)
    if _scored_from(spark, settings, week) == {inputs}:
        stored = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(F.col("week_start") == F.lit(week))
        counts = summary(stored)
        progress(
            f"kept {counts['rows']} recommendations for week {week} in {GOLD_RECOMMENDATIONS.name}: scored from "
            f"the same inputs ({name} version {version.version}, tables, config and code; id {inputs})"
        )
        return {**counts, "recommendations": stored}

    import mlflow.spark

    model = mlflow.spark.load_model(f"models:/{name}/{version.version}")
    progress(f"scoring week {week} with {name} version {version.version} (@champion, run {version.run_id})")

    weekly_version = tables[GOLD_SALES_WEEKLY.name]
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings, weekly_version)
    products_df = delta_io.read(spark, SILVER_PRODUCTS, settings, tables[SILVER_PRODUCTS.name])
    outlets_df = delta_io.read(spark, SILVER_OUTLETS, settings, tables[SILVER_OUTLETS.name])
    rows = build_scoring_rows(
        weekly_df,
        outlets_df,
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
    actions = config.scoring.candidate_actions()
    states = promotion_states(actions)
    history = (
        weekly_df.filter(
            (F.col("week_start") < F.lit(week)) & (F.col("week_start") >= F.lit(week - timedelta(weeks=LOOKBACK_WEEKS)))
        )
        .join(F.broadcast(products_df.select("product_id", "brand")), "product_id")
        .join(F.broadcast(outlets_df.select("outlet_id", "region")), "outlet_id")
    )
    planned = predict(model, rows).withColumnRenamed(PREDICTION, "planned_units")
    rows = (
        with_typical_cuts(
            planned.withColumn("planned_unit_price", F.col("unit_price")),
            promotion_cuts(history),
            states,
            config.scoring.min_promotion_weeks,
        )
        .join(F.broadcast(costs), on="product_id", how="left")
        .withColumn("in_holdout", in_holdout(experiment.name, experiment.holdout_share))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    expected = rows.count()
    if expected == 0:
        raise DataError(
            f"no outlet x product sold in the {config.scoring.active_weeks} weeks before {week}: "
            "ingest and build those weeks first"
        )
    book = effect_book(spark, settings, name, str(version.version), tables)
    progress(
        f"{expected} active outlet x product, {len(actions)} candidate actions each, lifts from "
        + (
            f"version {version.version}'s effects"
            if book.estimates
            else "no effects (none estimated: no action offered)"
        )
    )
    rules = Rules(
        config.scoring.max_discount,
        config.scoring.max_promoted_per_outlet,
        config.scoring.min_lift_pct,
        config.scoring.rank_by,
        config.scoring.assumed_margin,
        config.effects.confidence,
    )
    contract = load_contract(GOLD_RECOMMENDATIONS.contract, settings.contracts_dir)
    recommendations = select_contract(
        recommend(rows, book, actions, rules)
        .withColumn("experiment", F.lit(experiment.name))
        .withColumn("model_name", F.lit(name))
        .withColumn("model_version", F.lit(str(version.version)))
        .withColumn("model_run_id", F.lit(version.run_id))
        .withColumn("features_version", F.lit(weekly_version))
        .withColumn("inputs", F.lit(inputs)),
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
    not rewrite the week (the rows keep pointing at the earlier, identical version and inputs).
    """
    if not delta_io.exists(spark, GOLD_RECOMMENDATIONS, settings):
        return False
    existing = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(predicate)
    columns = [c for c in recommendations.columns if c not in ("features_version", "inputs")]
    if set(existing.columns) != set(recommendations.columns):
        return False
    return delta_io.fingerprint(existing.select(*columns)) == delta_io.fingerprint(recommendations.select(*columns))


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
