"""The scoring rows of a target week and the experiment's holdout.

The scoring rows of week T come from the same gold feature code as training: every outlet x product
active in the weeks before T gets an as-planned weekly row at T (units unknown, its regular price, no
promotion), and `gold.build_features` computes its lags, competition and season features. The model
forecasts each row as planned; the candidate actions' lifts come from the estimated effects
(`lakehouse.scoring.lifts`).
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.contracts.model import Contract
from lakehouse.medallion.gold import LOOKBACK_WEEKS, build_features

PROMO_FLAGS = ("is_on_deal", "is_featured", "has_display")
# The holdout hash: the first 8 hex digits of sha256("<experiment>:<outlet_id>") as a fraction of 16^8.
HASH_DIGITS = 8


def with_planned_rows(weekly_df: DataFrame, target_week: date, active_weeks: int) -> DataFrame:
    """Weekly facts of the year before `target_week`, plus an as-planned row at it for every active item.

    Active: sold in the `active_weeks` weeks before the target. The planned row carries the item's
    regular price (its latest week without a deal or feature ad, else its latest week) and no promotion; its units
    are unknown (null).
    """
    history = weekly_df.filter(
        (F.col("week_start") < F.lit(target_week))
        & (F.col("week_start") >= F.lit(target_week - timedelta(weeks=LOOKBACK_WEEKS)))
    )
    recent = history.filter(F.col("week_start") >= F.lit(target_week - timedelta(weeks=active_weeks)))
    latest_first = Window.partitionBy("outlet_id", "product_id").orderBy(
        F.asc(F.col("is_on_deal") | F.col("is_featured")), F.desc("week_start")
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
