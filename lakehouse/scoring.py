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
    latest price and no promotion; its units are unknown (null).
    """
    history = weekly_df.filter(F.col("week_start") < F.lit(target_week))
    recent = history.filter(F.col("week_start") >= F.lit(target_week - timedelta(weeks=active_weeks)))
    latest_first = Window.partitionBy("outlet_id", "product_id").orderBy(F.desc("week_start"))
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
