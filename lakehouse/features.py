"""What the model sees of a gold feature row, and what-if actions applied to those rows.

Training, evaluation, driver what-ifs and scoring all use these, so serving never needs a second
implementation of the features: an action changes the same columns the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

LABEL = "units"
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


@dataclass(frozen=True)
class Action:
    """A change to a row's plan: a relative price change and promotions switched on (or off)."""

    name: str
    price_change: float = 0.0
    deal: bool | None = None
    feature: bool | None = None
    display: bool | None = None


def with_action(features_df: DataFrame, action: Action) -> DataFrame:
    """Apply an action to feature rows, keeping price-derived columns consistent with the new price.

    Price index and the competitor ratio scale with the own price (the category average moves little
    when one product changes). Lags and rolling means describe earlier weeks and do not change.
    """
    factor = 1.0 + action.price_change
    df = features_df
    if action.price_change:
        df = (
            df.withColumn("unit_price", F.col("unit_price") * factor)
            .withColumn("log_price", F.log(F.col("unit_price")))
            .withColumn("price_index", F.col("price_index") * factor)
            .withColumn("price_vs_competitors", F.col("price_vs_competitors") * factor)
        )
    for column, value in zip(PROMO_FEATURES, (action.deal, action.feature, action.display), strict=True):
        if value is not None:
            df = df.withColumn(column, F.lit(value))
    return df
