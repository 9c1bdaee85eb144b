"""Scoring frames for a target week, candidate actions, and recommendations (work in progress, issue 4).

The scoring rows of week T come from the same gold feature code as training: every outlet x product
active in the weeks before T gets an as-planned weekly row at T (units unknown, its latest price,
no promotion), and `gold.build_features` computes its lags, competition and season features.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.contracts import Contract
from lakehouse.gold import build_features

PROMO_FLAGS = ("is_on_deal", "is_featured", "has_display")


def with_planned_rows(weekly_df: DataFrame, target_week: date, active_weeks: int) -> DataFrame:
    """Weekly facts before `target_week`, plus an as-planned row at it for every recently active item.

    Active: sold in the `active_weeks` weeks before the target. The planned row carries the item's
    regular price (its latest week without a deal, else its latest week) and no promotion; its units
    are unknown (null).
    """
    history = weekly_df.filter(F.col("week_start") < F.lit(target_week))
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


def best_actions(scored_df: DataFrame, max_discount: float, min_lift_pct: float, max_promoted: int) -> DataFrame:
    """One recommendation per outlet x product from its scored candidate actions (WIP, untested).

    `scored_df` has one row per outlet, product and action with `price_change` and `predicted_units`,
    including the `as_planned` action. Rules: no discount beyond `max_discount`; an action must lift
    units by at least `min_lift_pct` percent over as planned; at most `max_promoted` products per outlet
    get an action other than as planned (the ones with the largest lift in units).
    """
    keys = ["outlet_id", "product_id", "week_start"]
    base = scored_df.filter(F.col("action") == "as_planned").select(*keys, F.col("predicted_units").alias("base_units"))
    candidates = (
        scored_df.join(base, on=keys, how="inner")
        .withColumn("lift_units", F.col("predicted_units") - F.col("base_units"))
        .withColumn("lift_pct", 100 * F.try_divide(F.col("lift_units"), F.col("base_units")))
        .filter(F.col("price_change") >= -max_discount)
        .filter((F.col("action") == "as_planned") | (F.col("lift_pct") >= min_lift_pct))
    )
    per_item = Window.partitionBy(*keys).orderBy(F.desc("lift_units"), F.asc("action"))
    best = candidates.withColumn("_rank", F.row_number().over(per_item)).filter(F.col("_rank") == 1).drop("_rank")
    per_outlet = Window.partitionBy("outlet_id", "week_start").orderBy(F.desc("lift_units"), F.asc("product_id"))
    promoted_rank = F.sum((F.col("action") != "as_planned").cast("int")).over(
        per_outlet.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    over_limit = (F.col("action") != "as_planned") & (promoted_rank > max_promoted)
    return best.withColumn("over_limit", over_limit)
