"""Scoring a week (`lakehouse score`): every outlet's rows for the week, the champion's forecasts for each
candidate action, the effects that price them, and the recommendations written to gold_recommendations,
beside the as-planned rows the champion scored in gold_planned_features (the online features; a re-run
from the same inputs writes nothing)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import select_contract
from lakehouse.errors import DataError
from lakehouse.io import delta_io
from lakehouse.io.catalog import (
    GOLD_BACKTEST,
    GOLD_EFFECTS,
    GOLD_FEATURES,
    GOLD_PLANNED_FEATURES,
    GOLD_RECOMMENDATIONS,
    GOLD_SALES_WEEKLY,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    Table,
)
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.medallion.gold import LOOKBACK_WEEKS
from lakehouse.ml import registry
from lakehouse.ml.modeling import PREDICTION, predict
from lakehouse.policy import MLConfig
from lakehouse.progress import Progress
from lakehouse.scoring.lifts import EffectBook
from lakehouse.scoring.prices import promotion_cuts, with_typical_cuts
from lakehouse.scoring.recommend import Rules, coverage, promotion_states, recommend, summary
from lakehouse.scoring.rows import build_scoring_rows, in_holdout
from lakehouse.settings import Settings

# The code a scored week is a function of (with the champion's own pipeline, named by its version).
SCORE_CODE = (
    "lakehouse.scoring.score_flow",
    "lakehouse.scoring.rows",
    "lakehouse.scoring.prices",
    "lakehouse.scoring.lifts",
    "lakehouse.scoring.recommend",
    "lakehouse.ml.model_inputs",
    "lakehouse.policy",
    "lakehouse.medallion.gold",
)
# The tables scoring reads (at the Delta versions `score_inputs` pins).
SCORE_TABLES = (GOLD_SALES_WEEKLY, SILVER_OUTLETS, SILVER_PRODUCTS, GOLD_EFFECTS, GOLD_BACKTEST)
# Of these, scoring reads only the champion's rows: they enter a week's inputs by their own `inputs` ids, so
# another version's effects written beside them (every retraining's challenger) do not make a week stale.
PER_MODEL_VERSION = (GOLD_EFFECTS, GOLD_BACKTEST)


def score_inputs(
    spark: SparkSession, settings: Settings, config: MLConfig, week: date, version: Any
) -> tuple[str, dict[str, int]]:
    """Everything a week's recommendations are a function of, as one id (`inputs` on every row), and the
    Delta versions of the tables it read (scoring reads those versions)."""
    tables = {t.name: delta_io.version(spark, t, settings) for t in SCORE_TABLES if delta_io.exists(spark, t, settings)}
    per_model_version = {t.name for t in PER_MODEL_VERSION}
    read: dict[str, object] = {name: v for name, v in tables.items() if name not in per_model_version}
    for t in PER_MODEL_VERSION:
        if t.name in tables:
            rows = _of_model_version(spark, settings, t, tables[t.name], version.name, str(version.version))
            read[t.name] = sorted({str(r["inputs"]) for r in rows.select("inputs").distinct().collect()})
    parts = {
        "week": week,
        "model": f"{version.name}/{version.version}/{version.run_id}",
        "tables": read,
        "contracts": {
            t.name: load_contract(t.contract, settings.contracts_dir).version
            for t in (GOLD_FEATURES, GOLD_RECOMMENDATIONS, GOLD_PLANNED_FEATURES)
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
        rows = _of_model_version(spark, settings, table, tables[table.name], name, version)
        return [r.asDict() for r in rows.collect()]

    return EffectBook.of(version, of_version(GOLD_EFFECTS)).with_backtest(of_version(GOLD_BACKTEST))


def _of_model_version(
    spark: SparkSession, settings: Settings, table: Table, table_version: int, name: str, version: str
) -> DataFrame:
    """A per-model-version table's rows of one model version, as of `table_version`."""
    return delta_io.read(spark, table, settings, table_version).filter(
        (F.col("model_name") == F.lit(name)) & (F.col("model_version") == F.lit(version))
    )


def _scored_from(spark: SparkSession, settings: Settings, table: Table, week: date) -> set[str | None]:
    """The `inputs` ids of the week's stored rows of a table scoring writes (empty when never written)."""
    if not delta_io.exists(spark, table, settings):
        return set()
    week_df = delta_io.read(spark, table, settings).filter(F.col("week_start") == F.lit(week))
    if "inputs" not in week_df.columns:
        return {None}
    return {r["inputs"] for r in week_df.select("inputs").distinct().collect()}


def score_week(spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress) -> dict:
    """Build the week's scoring rows, score every candidate action, choose, check coverage and write.

    A week already scored from the same inputs (`score_inputs`) is read back, not recomputed.
    """
    name = config.registry.model_name
    version = registry.champion(name)
    inputs, tables = score_inputs(spark, settings, config, week, version)
    written = (_scored_from(spark, settings, t, week) for t in (GOLD_PLANNED_FEATURES, GOLD_RECOMMENDATIONS))
    if all(ids == {inputs} for ids in written):
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
    lineage = {
        "model_name": F.lit(name),
        "model_version": F.lit(str(version.version)),
        "model_run_id": F.lit(version.run_id),
        "features_version": F.lit(weekly_version),
        "inputs": F.lit(inputs),
    }
    contract = load_contract(GOLD_RECOMMENDATIONS.contract, settings.contracts_dir)
    recommendations = select_contract(
        recommend(rows, book, actions, rules).withColumn("experiment", F.lit(experiment.name)).withColumns(lineage),
        contract,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    counts = coverage(recommendations, expected)  # fails the job before anything is written
    predicate = f"week_start = '{week.isoformat()}'"
    # The rows the champion scored first, so a week the service finds recommended has its online features.
    planned_contract = load_contract(GOLD_PLANNED_FEATURES.contract, settings.contracts_dir)
    planned_rows = select_contract(rows.withColumns(lineage), planned_contract)
    delta_io.write_if_changed(planned_rows, GOLD_PLANNED_FEATURES, settings, predicate)
    # Reached only when the week's inputs changed: even when its recommendations did not, they are written
    # with the new `inputs` id (one new version), so the next run finds them scored from these inputs.
    unchanged = not delta_io.write_if_changed(recommendations, GOLD_RECOMMENDATIONS, settings, predicate)
    rows.unpersist()
    progress(
        f"{'kept (same result)' if unchanged else 'wrote'} {counts['rows']} recommendations for week {week} "
        f"in {GOLD_RECOMMENDATIONS.name}: "
        f"{counts['recommended']} with an action, {counts['holdout_items']} in the holdout"
    )
    return {**counts, "recommendations": recommendations}
