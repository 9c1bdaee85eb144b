"""Back-test of the effects on the promotions that really happened, over a rolling origin.

The last `weeks` weeks of the model's gold_features are cut into `origins` blocks. For each block, the
effects are estimated by double ML from the weeks before it only (all outlets; no segments, no cross
prices), then every promotion in the block (an outlet x product x week with a deal, feature ad or
display) gets:

- a **predicted** lift in log units: own-price elasticity x (log price - log regular price) + the
  effects of its promotions + the dip when last week was promoted too;
- a **realised** lift: the item's log units that week minus its baseline (the mean log units of its
  unpromoted weeks among the `baseline_weeks` before, not right after a promotion, at that outlet),
  minus the same change of the product at the outlets that did not promote it that week
  (difference in differences, which removes the week's season and the chain's shocks). When fewer
  than `min_controls` outlets did not promote it (a chain-wide feature ad, as in Dominick's), the
  counterfactual is the baseline alone (pre/post) and the row says so: then the week's own demand
  shock stays in the realised lift.

Calibration per brand and action: mean predicted vs mean realised (log points and percent), the
realised mean's interval clustered by week, and the slope of realised on predicted (least squares
with an intercept, standard error clustered by week). A well-calibrated model has slope 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse.ml.linear import grouped_ols
from lakehouse.ml.model_inputs import promo_state

ALL = "ALL"
DID, PRE_POST = "did", "pre_post"
EFFECT_OF_FLAG = {"is_on_deal": "deal", "is_featured": "feature", "has_display": "display"}


@dataclass(frozen=True)
class Settings:
    """The `backtest` config section."""

    weeks: int
    origins: int
    baseline_weeks: int
    min_controls: int
    confidence: float


def blocks(weeks: list[date], s: Settings) -> list[tuple[date, date]]:
    """The last `s.weeks` of the given weeks cut into `s.origins` contiguous blocks: (first, last) of each."""
    tail = sorted(set(weeks))[-s.weeks :] if s.weeks > 0 else []
    if not tail or s.origins < 1:
        return []
    size = math.ceil(len(tail) / s.origins)
    return [(tail[i], tail[min(i + size, len(tail)) - 1]) for i in range(0, len(tail), size)]


def promotion_outcomes(features_df: DataFrame, first: date, last: date, s: Settings) -> DataFrame:
    """Every promoted outlet x product x week in [first, last] with sales: brand, `action` (its promotion
    state), the flags, `price_cut` (log price - log regular price), `dip`, `realised` and `counterfactual`."""
    item = Window.partitionBy("outlet_id", "product_id").orderBy("_day")
    before = item.rangeBetween(-7 * s.baseline_weeks, -7)
    promoted = F.col("is_on_deal") | F.col("is_featured") | F.col("has_display")
    last_week = F.lag("_day").over(item) == F.col("_day") - 7
    rows = (
        features_df.filter(F.col("units") > 0)
        .withColumn("_day", F.datediff("week_start", F.lit(date(1970, 1, 1))))
        .withColumn("_log_units", F.log("units"))
        .withColumn("_log_price", F.log("unit_price"))
        .withColumn("_promoted", promoted)
        .withColumn("dip", (last_week & F.lag(F.col("is_on_deal") | F.col("is_featured")).over(item)).cast("double"))
        .withColumn("dip", F.coalesce("dip", F.lit(0.0)))
        .withColumn("_clean", ~F.col("_promoted") & (F.col("dip") == 0))
    )
    rows = (
        rows.withColumn("_baseline", F.avg(F.when(F.col("_clean"), F.col("_log_units"))).over(before))
        .withColumn("_regular", F.avg(F.when(F.col("_clean"), F.col("_log_price"))).over(before))
        .filter((F.col("week_start") >= F.lit(first)) & (F.col("week_start") <= F.lit(last)))
        .filter(F.col("_baseline").isNotNull())
        .withColumn("_change", F.col("_log_units") - F.col("_baseline"))
    )
    controls = (
        rows.filter(F.col("_clean"))
        .groupBy("product_id", "week_start")
        .agg(F.avg("_change").alias("_control"), F.count(F.lit(1)).alias("_controls"))
    )
    enough = F.col("_controls") >= F.lit(s.min_controls)
    return (
        rows.filter(F.col("_promoted") & F.col("_regular").isNotNull())
        .join(controls, ["product_id", "week_start"], "left")
        .select(
            "outlet_id",
            "product_id",
            "week_start",
            "brand",
            promo_state().alias("action"),
            *[F.col(c).cast("double").alias(c) for c in EFFECT_OF_FLAG],
            (F.col("_log_price") - F.col("_regular")).alias("price_cut"),
            "dip",
            F.when(enough, F.col("_change") - F.col("_control")).otherwise(F.col("_change")).alias("realised"),
            F.when(enough, F.lit(DID)).otherwise(F.lit(PRE_POST)).alias("counterfactual"),
        )
    )


def with_predicted(outcomes_df: DataFrame, effect_rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    """`predicted` log lift of each promotion from the effects (dml, ALL); brands without an own-price
    estimate get none. A promotion effect that was not estimated counts as 0 (the action is not offered)."""
    table: dict[str, dict[str, float]] = {}
    for r in effect_rows:
        if r["method"] == "dml" and r["segment"] == ALL and r["estimate"] is not None:
            table.setdefault(r["brand"], {})[r["effect"]] = float(r["estimate"])
    spark = outcomes_df.sparkSession
    names = ["own_price", *EFFECT_OF_FLAG.values(), "post_promotion_dip"]
    values = [(b, *[e.get(n, 0.0) for n in names]) for b, e in table.items() if "own_price" in e]
    effects = spark.createDataFrame(values, "brand string, " + ", ".join(f"_{n} double" for n in names))
    predicted = (
        F.col("_own_price") * F.col("price_cut")
        + sum((F.col(f) * F.col(f"_{e}") for f, e in EFFECT_OF_FLAG.items()), F.lit(0.0))
        + F.col("dip") * F.col("_post_promotion_dip")
    )
    joined = outcomes_df.join(F.broadcast(effects), "brand", "inner")
    return joined.withColumn("predicted", predicted).drop(*[f"_{n}" for n in names])


def calibration(spark: SparkSession, scored_df: DataFrame, confidence: float) -> list[dict[str, Any]]:
    """Per brand x action, per brand (action ALL) and overall: promotions, weeks, mean predicted and realised
    (log points and percent), the realised mean's interval (clustered by week) and the slope with its
    interval (clustered by week). Groups with fewer than two weeks get no intervals."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    levels = [("brand", "action"), ("brand",), ()]
    rows: list[dict[str, Any]] = []
    for keys in levels:
        grouped = scored_df.withColumn("_brand", F.col("brand") if "brand" in keys else F.lit(ALL)).withColumn(
            "_action", F.col("action") if "action" in keys else F.lit(ALL)
        )
        by_week = grouped.groupBy("_brand", "_action", "week_start").agg(
            F.avg("realised").alias("_wr"), F.count(F.lit(1)).alias("_wn")
        )
        week_stats = {
            (r["_brand"], r["_action"]): r
            for r in by_week.groupBy("_brand", "_action")
            .agg(F.count(F.lit(1)).alias("weeks"), F.stddev_samp("_wr").alias("_sd"))
            .collect()
        }
        stats = grouped.groupBy("_brand", "_action").agg(
            F.count(F.lit(1)).alias("promotions"),
            F.avg("predicted").alias("predicted"),
            F.avg("realised").alias("realised"),
            F.avg((F.col("counterfactual") == F.lit(DID)).cast("double")).alias("did_share"),
        )
        demeaned = grouped.withColumn(
            "_x", F.col("predicted") - F.avg("predicted").over(Window.partitionBy("_brand", "_action"))
        ).withColumn("_y", F.col("realised") - F.avg("realised").over(Window.partitionBy("_brand", "_action")))
        keys_seen = [(r["_brand"], r["_action"]) for r in stats.select("_brand", "_action").collect()]
        fits = {
            f.key: f
            for f in grouped_ols(demeaned, ["_brand", "_action"], "_y", {k: ("_x",) for k in keys_seen}, "week_start")
        }
        for r in stats.collect():
            key = (r["_brand"], r["_action"])
            w = week_stats[key]
            half = z * w["_sd"] / math.sqrt(w["weeks"]) if w["weeks"] > 1 and w["_sd"] is not None else None
            fit = fits.get(key)
            slope = fit.estimate[0] if fit else None
            half_slope = z * fit.std_error[0] if fit else None
            rows.append(
                {
                    "brand": key[0],
                    "action": key[1],
                    "promotions": int(r["promotions"]),
                    "weeks": int(w["weeks"]),
                    "did_share": float(r["did_share"]),
                    "predicted": float(r["predicted"]),
                    "realised": float(r["realised"]),
                    "realised_low": None if half is None else float(r["realised"]) - half,
                    "realised_high": None if half is None else float(r["realised"]) + half,
                    "slope": slope,
                    "slope_low": None if slope is None or half_slope is None else slope - half_slope,
                    "slope_high": None if slope is None or half_slope is None else slope + half_slope,
                }
                | percent(r["predicted"], r["realised"], half)
            )
    return rows


def percent(predicted: float, realised: float, half: float | None) -> dict[str, float | None]:
    """The log-point means as lifts in percent, 100 (exp(x) - 1)."""

    def pct(x: float | None) -> float | None:
        return None if x is None else 100 * math.expm1(x)

    return {
        "predicted_pct": pct(predicted),
        "realised_pct": pct(realised),
        "realised_pct_low": None if half is None else pct(realised - half),
        "realised_pct_high": None if half is None else pct(realised + half),
    }
