"""What the model sees of a gold feature row, and what-if actions applied to those rows.

Training, evaluation, driver what-ifs and scoring all use these, so serving never needs a second
implementation of the features: an action changes the same columns the model was trained on.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# The actions are plain data in their own module, so that config loads without pyspark; named here as before.
from lakehouse.policy import AS_PLANNED as AS_PLANNED
from lakehouse.policy import Action

LABEL = "units"
# Outlet attributes from silver_outlets (the demographics and competition Dominick's delivers).
OUTLET_ATTRIBUTES = (
    "income",
    "share_age60",
    "share_college",
    "share_ethnic",
    "share_large_households",
    "share_working_women",
    "share_house_value_150k",
    "dist_discounter",
    "discounter_volume_ratio",
    "dist_competitors",
    "competitor_volume_ratio",
)
# Numeric gold columns the model may use; columns that are null on every training row are dropped per run.
NUMERIC_FEATURES = (
    "unit_price",
    "log_price",
    "price_index",
    "competitor_price_mean",
    "competitor_price_min",
    "price_vs_competitors",
    "competitor_deal_share",
    "units_lag_1",
    "units_lag_2",
    "units_lag_52",
    "units_mean_4w",
    "price_mean_4w",
    "week_of_year",
    "month",
    "season_sin",
    "season_cos",
    *OUTLET_ATTRIBUTES,
    "pack_size",
)
PROMO_FEATURES = ("is_on_deal", "is_featured", "has_display")
# Strings the model indexes; unseen values at scoring time get their own index.
CATEGORICAL_FEATURES = ("product_id", "brand", "channel", "region")
KEYS = ("outlet_id", "product_id", "week_start")


def model_input_columns(numeric: tuple[str, ...] = NUMERIC_FEATURES) -> list[str]:
    """The raw gold columns a model's signature lists (no labels, no keys it does not use)."""
    return [*CATEGORICAL_FEATURES, *numeric, *PROMO_FEATURES]


def promo_state() -> Column:
    """'none', 'deal', 'deal+feature', ...: which promotions a row had."""
    names = ("deal", "feature", "display")
    parts = [F.when(F.col(c), F.lit(name)) for c, name in zip(PROMO_FEATURES, names, strict=True)]
    joined = F.concat_ws("+", *parts)
    return F.when(joined == "", F.lit("none")).otherwise(joined)


def filter_weeks(df: DataFrame, first: date | None, last: date | None) -> DataFrame:
    """Rows with first <= week_start <= last (either bound may be open)."""
    if first is not None:
        df = df.filter(F.col("week_start") >= F.lit(first))
    if last is not None:
        df = df.filter(F.col("week_start") <= F.lit(last))
    return df


def _with_plan(df: DataFrame, price_change: Column, deal: Column, feature: Column, display: Column) -> DataFrame:
    """Apply a price change (relative) and promotion switches (null leaves a flag as it is).

    Price index and the competitor ratio scale with the own price (the category average moves little
    when one product changes). Lags and rolling means describe earlier weeks and do not change.
    """
    factor = F.lit(1.0) + price_change
    df = (
        df.withColumn("unit_price", F.col("unit_price") * factor)
        .withColumn("log_price", F.log(F.col("unit_price")))
        .withColumn("price_index", F.col("price_index") * factor)
        .withColumn("price_vs_competitors", F.col("price_vs_competitors") * factor)
    )
    for column, value in zip(PROMO_FEATURES, (deal, feature, display), strict=True):
        df = df.withColumn(column, F.coalesce(value, F.col(column)))
    return df


def with_action(features_df: DataFrame, action: Action) -> DataFrame:
    """Apply one action to every feature row (what-ifs); no price change leaves the price columns alone."""
    flags = [F.lit(v).cast("boolean") for v in (action.deal, action.feature, action.display)]
    if not action.price_change:
        df = features_df
        for column, value in zip(PROMO_FEATURES, flags, strict=True):
            df = df.withColumn(column, F.coalesce(value, F.col(column)))
        return df
    return _with_plan(features_df, F.lit(action.price_change), *flags)


def with_candidate_actions(features_df: DataFrame, actions: list[Action]) -> DataFrame:
    """One row per feature row and action (column `action`, `price_change`), with the action applied."""
    spark = features_df.sparkSession
    rows = [(a.name, float(a.price_change), a.deal, a.feature, a.display) for a in actions]
    actions_df = spark.createDataFrame(
        rows, "action string, price_change double, _deal boolean, _feature boolean, _display boolean"
    )
    crossed = features_df.crossJoin(F.broadcast(actions_df))
    applied = _with_plan(crossed, F.col("price_change"), F.col("_deal"), F.col("_feature"), F.col("_display"))
    return applied.drop("_deal", "_feature", "_display")
