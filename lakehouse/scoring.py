"""Scoring rows for a target week, candidate actions, the recommendation per outlet x product, and the holdout.

The scoring rows of week T come from the same gold feature code as training: every outlet x product
active in the weeks before T gets an as-planned weekly row at T (units unknown, its regular price, no
promotion), and `gold.build_features` computes its lags, competition and season features. Each row is
then crossed with the candidate actions (`features.with_candidate_actions`) and scored by the model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.ml import PipelineModel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse import modeling
from lakehouse.contracts import Contract
from lakehouse.features import AS_PLANNED, KEYS, Action, with_candidate_actions
from lakehouse.gold import LOOKBACK_WEEKS, build_features
from lakehouse.modeling import PREDICTION
from lakehouse.runtime import DataError

PROMO_FLAGS = ("is_on_deal", "is_featured", "has_display")
# The holdout hash: the first 8 hex digits of sha256("<experiment>:<outlet_id>") as a fraction of 16^8.
HASH_DIGITS = 8


def with_planned_rows(weekly_df: DataFrame, target_week: date, active_weeks: int) -> DataFrame:
    """Weekly facts of the year before `target_week`, plus an as-planned row at it for every active item.

    Active: sold in the `active_weeks` weeks before the target. The planned row carries the item's
    regular price (its latest week without a deal, else its latest week) and no promotion; its units
    are unknown (null).
    """
    history = weekly_df.filter(
        (F.col("week_start") < F.lit(target_week))
        & (F.col("week_start") >= F.lit(target_week - timedelta(weeks=LOOKBACK_WEEKS)))
    )
    recent = history.filter(F.col("week_start") >= F.lit(target_week - timedelta(weeks=active_weeks)))
    latest_first = Window.partitionBy("outlet_id", "product_id").orderBy(
        F.asc(F.col("is_on_deal")), F.desc("week_start")
    )
    planned = (
        recent.withColumn("_rank", F.row_number().over(latest_first))
        .filter(F.col("_rank") == 1)
        .select(
            "outlet_id",
            "product_id",
            F.lit(target_week).alias("week_start"),
            F.lit(None).cast("double").alias("units"),
            "unit_price",
            *[F.lit(False).alias(flag) for flag in PROMO_FLAGS],
        )
    )
    return history.unionByName(planned, allowMissingColumns=True)


def build_scoring_rows(
    weekly_df: DataFrame,
    outlets_df: DataFrame,
    products_df: DataFrame,
    contract: Contract,
    target_week: date,
    active_weeks: int,
) -> DataFrame:
    """Gold feature rows of the target week, as planned, for every active outlet x product."""
    planned = with_planned_rows(weekly_df, target_week, active_weeks)
    features = build_features(planned, outlets_df, products_df, contract)
    return features.filter(F.col("week_start") == F.lit(target_week))


def holdout_fraction(outlet_id: str, experiment: str) -> float:
    """The outlet's position in [0, 1) for an experiment; in the holdout when below the share.

    Stable across runs, machines and engines (the Spark column below computes the same number), and
    independent for different experiment names.
    """
    digest = hashlib.sha256(f"{experiment}:{outlet_id}".encode()).hexdigest()
    return int(digest[:HASH_DIGITS], 16) / 16**HASH_DIGITS


def in_holdout(experiment: str, share: float) -> Column:
    """Spark column: is `outlet_id` in the experiment's holdout (same hash as `holdout_fraction`)."""
    digest = F.sha2(F.concat(F.lit(f"{experiment}:"), F.col("outlet_id")), 256)
    fraction = F.conv(F.substring(digest, 1, HASH_DIGITS), 16, 10).cast("double") / F.lit(float(16**HASH_DIGITS))
    return fraction < F.lit(share)


@dataclass(frozen=True)
class Rules:
    """Business rules for choosing an action (from the `scoring` config section)."""

    max_discount: float
    max_promoted_per_outlet: int
    min_lift_pct: float


def score_candidates(model: PipelineModel, rows_df: DataFrame, actions: list[Action]) -> DataFrame:
    """Every scoring row under every candidate action, with the model's `predicted_units` (one pass).

    Each row keeps its price before the action as `planned_unit_price`.
    """
    planned = rows_df.withColumn("planned_unit_price", F.col("unit_price"))
    return modeling.predict(model, with_candidate_actions(planned, actions))


def recommend(scored_df: DataFrame, actions: list[Action], rules: Rules) -> DataFrame:
    """One row per outlet x product x week from its scored candidate actions.

    `scored_df` has one row per key and action (`action`, `predicted_units`), including as_planned,
    plus per-key columns `brand`, `in_holdout`, `unit_cost` (null when unknown) and
    `planned_unit_price`. Every candidate gets its lift over as planned, in units, percent and (with a
    unit cost) margin. The intended action is the one with the largest lift in units among those that
    cut the price by at most `max_discount` and lift units by at least `min_lift_pct` percent; only the
    `max_promoted_per_outlet` largest lifts of an outlet keep theirs. Holdout outlets get as planned,
    but their intended action is kept: it defines the effect the experiment measures.
    """
    per_key = [*KEYS, "brand", "in_holdout", "unit_cost", "planned_unit_price"]
    # One shuffle by outlet serves the fold below and the per-outlet ranking; the fold is a hash
    # aggregation with one numeric column per action (collecting structs with lambdas was slower).
    grouped = (
        scored_df.repartition("outlet_id")
        .groupBy(*per_key)
        .agg(
            *[
                F.max(F.when(F.col("action") == a.name, F.col(PREDICTION))).alias(f"_p{i}")
                for i, a in enumerate(actions)
            ]
        )
    )
    names = [a.name for a in actions]
    base, planned_price, cost = F.col(f"_p{names.index(AS_PLANNED)}"), F.col("planned_unit_price"), F.col("unit_cost")

    def candidate(i: int, action: Action) -> Column:
        units, price = F.col(f"_p{i}"), planned_price * F.lit(1.0 + action.price_change)
        lift = units - base
        return F.struct(
            F.lit(action.name).alias("action"),
            F.lit(float(action.price_change)).alias("price_change"),
            price.alias("unit_price"),
            units.alias(PREDICTION),
            lift.alias("lift_units"),
            (F.lit(100.0) * F.try_divide(lift, base)).alias("lift_pct"),
            ((price - cost) * units - (planned_price - cost) * base).alias("incremental_margin"),
        )

    def qualifies(i: int) -> Column:
        """(lift, position) of candidate i when it lifts enough, else null."""
        c = F.col("candidates")[i]
        return F.when(
            c["lift_pct"] >= F.lit(rules.min_lift_pct), F.struct(c["lift_units"].alias("k"), F.lit(i).alias("i"))
        )

    allowed = [
        i for i, a in enumerate(actions) if a.name != AS_PLANNED and a.price_change >= -rules.max_discount - 1e-9
    ]
    ranked_candidates = [qualifies(i) for i in allowed]
    # The largest lift (ties: the later action in the config); greatest skips nulls. No allowed action
    # (say, only price cuts beyond max_discount): nothing qualifies.
    best = (
        F.when(F.lit(False), F.struct(F.lit(0.0).alias("k"), F.lit(0).alias("i")))
        if not allowed
        else ranked_candidates[0]
        if len(allowed) == 1
        else F.greatest(*ranked_candidates)
    )
    per_outlet = Window.partitionBy("outlet_id", "week_start").orderBy(F.desc("_best.lift_units"), "product_id")
    ranked = (
        grouped.select(*per_key, F.array(*[candidate(i, a) for i, a in enumerate(actions)]).alias("candidates"))
        .withColumn("_planned", F.col("candidates")[names.index(AS_PLANNED)])
        .withColumn("_best", F.when(best.isNotNull(), F.get(F.col("candidates"), best["i"])))
        .withColumn("_rank", F.when(F.col("_best").isNotNull(), F.row_number().over(per_outlet)))
    )
    within_limit = F.col("_rank") <= F.lit(rules.max_promoted_per_outlet)
    intended = F.when(F.col("_best").isNotNull() & within_limit, F.col("_best")).otherwise(F.col("_planned"))
    chosen = F.when(F.col("in_holdout"), F.col("_planned")).otherwise(F.col("_intended"))
    reason = (
        F.when(F.col("in_holdout"), F.lit("holdout outlet: no recommendation (control group)"))
        .when(
            F.col("_best").isNull(),
            F.lit(
                f"no action lifts units by {rules.min_lift_pct:g}% or more "
                f"within a {rules.max_discount:.0%} price cut: keep the plan"
            ),
        )
        .when(
            ~within_limit,
            F.lit(f"the outlet's {rules.max_promoted_per_outlet} larger lifts take its promotion slots: keep the plan"),
        )
        .otherwise(
            F.format_string(
                "%s: +%.1f units (%+.1f%%) over the plan",
                F.col("_best.action"),
                F.col("_best.lift_units"),
                F.col("_best.lift_pct"),
            )
        )
    )
    return ranked.withColumn("_intended", intended).select(
        *KEYS,
        "brand",
        "in_holdout",
        F.col("_intended.action").alias("intended_action"),
        chosen["action"].alias("action"),
        chosen["price_change"].alias("price_change"),
        reason.alias("reason"),
        "planned_unit_price",
        chosen["unit_price"].alias("unit_price"),
        F.col(f"_planned.{PREDICTION}").alias("planned_units"),
        chosen[PREDICTION].alias(PREDICTION),
        chosen["lift_units"].alias("lift_units"),
        chosen["lift_pct"].alias("lift_pct"),
        chosen["incremental_margin"].alias("incremental_margin"),
        "unit_cost",
        "candidates",
    )


def summary(recommendations_df: DataFrame) -> dict[str, int]:
    """A scored week's counts (one aggregation): rows, distinct items, invalid predictions, recommended, holdout."""
    bad = F.exists(
        "candidates",
        lambda c: c[PREDICTION].isNull() | F.isnan(c[PREDICTION]) | (c[PREDICTION] < F.lit(0.0)),
    )
    row = recommendations_df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct(*KEYS).alias("distinct_items"),
        F.sum(bad.cast("int")).alias("invalid_predictions"),
        F.sum((F.col("action") != F.lit(AS_PLANNED)).cast("int")).alias("recommended"),
        F.sum(F.col("in_holdout").cast("int")).alias("holdout_items"),
    ).first()
    assert row is not None
    return {k: int(row[k] or 0) for k in row.asDict()}


def coverage(recommendations_df: DataFrame, expected_items: int) -> dict[str, int]:
    """Counts that must hold for a scored week: one row per expected item, all predictions valid.

    Raises DataError with the counts when any does not.
    """
    counts = summary(recommendations_df) | {"expected_items": expected_items}
    problems = []
    if counts["rows"] != expected_items:
        problems.append(f"{counts['rows']} recommendations for {expected_items} active outlet x product")
    if counts["distinct_items"] != counts["rows"]:
        problems.append(f"{counts['rows'] - counts['distinct_items']} duplicate outlet x product rows")
    if counts["invalid_predictions"]:
        problems.append(f"{counts['invalid_predictions']} items with a null, NaN or negative prediction")
    if problems:
        raise DataError("coverage check failed: " + "; ".join(problems) + f" ({counts})")
    return counts
