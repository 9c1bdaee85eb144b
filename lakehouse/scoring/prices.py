"""The price a promotion comes with, as the outlets of the history really ran it.

A deal or a feature ad in the history comes with a price cut: the week's price below the item's regular
price (the median price of its weeks without a promotion in the history). For each promotion state
(`deal`, `feature`, `deal+feature`, ...) the typical cut is the median over the weeks with exactly that
state, taken at the narrowest level with enough weeks: the outlet and brand, else the region and
brand, else the brand over the chain. An action whose state never occurred for the brand gets no price,
and is not offered.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.ml.model_inputs import promo_state
from lakehouse.policy import Action

# The narrowest level first: (label, the columns a typical cut is computed over besides brand and state).
LEVELS = (("outlet", ("outlet_id",)), ("region", ("region",)), ("chain", ()))
NONE = "none"


def state_of(action: Action) -> str:
    """The promotion state an action switches on, named as `features.promo_state` names a row's."""
    names = [n for n, on in (("deal", action.deal), ("feature", action.feature), ("display", action.display)) if on]
    return "+".join(names) or NONE


def promotion_cuts(history_df: DataFrame) -> DataFrame:
    """Weeks with a promotion: outlet_id, region, brand, `state` and `cut` (1 - price / regular price, >= 0)."""
    item = Window.partitionBy("outlet_id", "product_id")
    state = promo_state()
    regular = F.percentile_approx(F.when(state == F.lit(NONE), F.col("unit_price")), 0.5).over(item)
    return (
        history_df.withColumn("state", state)
        .withColumn("_regular", regular)
        .filter((F.col("state") != F.lit(NONE)) & F.col("_regular").isNotNull() & (F.col("unit_price") > 0))
        .select(
            "outlet_id",
            "region",
            "brand",
            "state",
            F.greatest(F.lit(0.0), F.lit(1.0) - F.col("unit_price") / F.col("_regular")).alias("cut"),
        )
    )


def typical_cuts(cuts_df: DataFrame, states: list[str], min_weeks: int) -> dict[str, DataFrame]:
    """Per level, a small frame keyed by its columns and brand: per state `cut_<i>` (median) where it has
    at least `min_weeks` weeks, else null. `states[i]` names column i."""
    out = {}
    for level, keys in LEVELS:
        medians = (
            cuts_df.filter(F.col("state").isin(states))
            .groupBy(*keys, "brand", "state")
            .agg(F.percentile_approx("cut", 0.5).alias("cut"), F.count(F.lit(1)).alias("weeks"))
            .filter(F.col("weeks") >= F.lit(min_weeks))
        )
        out[level] = medians.groupBy(*keys, "brand").agg(
            *[
                F.max(F.when(F.col("state") == F.lit(s), F.col("cut"))).alias(f"_{level}_cut_{i}")
                for i, s in enumerate(states)
            ]
        )
    return out


def with_typical_cuts(rows_df: DataFrame, cuts_df: DataFrame, states: list[str], min_weeks: int) -> DataFrame:
    """Each row gets, per promotion state i, `cut_<i>` (the typical cut) and `cut_from_<i>` (its level)."""
    tables = typical_cuts(cuts_df, states, min_weeks)
    for level, keys in LEVELS:
        table = tables[level] if level == "outlet" else F.broadcast(tables[level])  # outlets x brands may be large
        rows_df = rows_df.join(table, [*keys, "brand"], "left")
    for i in range(len(states)):
        found: list[tuple[str, Column]] = [(level, F.col(f"_{level}_cut_{i}")) for level, _ in LEVELS]
        cut = F.coalesce(*[c for _, c in found])
        source = F.coalesce(*[F.when(c.isNotNull(), F.lit(level)) for level, c in found])
        rows_df = rows_df.withColumn(f"cut_{i}", cut).withColumn(f"cut_from_{i}", source)
    return rows_df.drop(*[f"_{level}_cut_{i}" for level, _ in LEVELS for i in range(len(states))])
