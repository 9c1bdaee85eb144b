"""Realised lift of a scored week: treated against holdout outlets, adjusted by the pre-period (CUPED).

The unit of analysis is the outlet, because the holdout is drawn by outlet: per outlet and brand, the
outcome is the week's units summed over the outlet's scored products of the brand, and the covariate
is the same sum averaged over the weeks before. CUPED subtracts theta * (covariate - its mean), with
theta = cov(outcome, covariate) / var(covariate) over both arms, which keeps the difference in means
unbiased and narrows its interval by the share of variance the pre-period explains. The analysis is
written with the pandas API on Spark; only per brand and arm moments (a few rows) reach the driver.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from statistics import NormalDist

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

ALL_BRANDS = "ALL"
METHOD = "cuped"


def outlet_outcomes(recommendations_df: DataFrame, weekly_df: DataFrame, week: date, pre_weeks: int) -> DataFrame:
    """Per scored outlet x product: arm, brand, units in the week (0 when it sold nothing) and mean pre-period units."""
    items = recommendations_df.filter(F.col("week_start") == F.lit(week)).select(
        "outlet_id", "product_id", F.coalesce("brand", F.lit("unknown")).alias("brand"), "in_holdout"
    )
    actual = weekly_df.filter(F.col("week_start") == F.lit(week)).select("outlet_id", "product_id", "units")
    pre = (
        weekly_df.filter(
            (F.col("week_start") < F.lit(week)) & (F.col("week_start") >= F.lit(week - timedelta(weeks=pre_weeks)))
        )
        .groupBy("outlet_id", "product_id")
        .agg((F.sum("units") / F.lit(float(pre_weeks))).alias("pre_units"))
    )
    return (
        items.join(actual, ["outlet_id", "product_id"], "left")
        .join(pre, ["outlet_id", "product_id"], "left")
        .select(
            "outlet_id",
            "brand",
            "in_holdout",
            F.coalesce("units", F.lit(0.0)).cast("double").alias("y"),
            F.coalesce("pre_units", F.lit(0.0)).cast("double").alias("x"),
        )
    )


@contextmanager
def pandas_semantics(spark: SparkSession) -> Iterator[None]:
    """ANSI SQL off while the pandas API on Spark runs (it refuses ANSI mode), restored afterwards."""
    before = spark.conf.get("spark.sql.ansi.enabled") or "true"
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.ansi.enabled", before)


def arm_moments(outcomes_df: DataFrame):
    """Per brand (and ALL) and arm: n, sums of x, y, x^2, xy, y^2 over outlets, as a small pandas frame."""
    from pyspark.pandas.utils import PandasAPIOnSparkAdviceWarning

    with pandas_semantics(outcomes_df.sparkSession), warnings.catch_warnings():
        # pandas-on-Spark's own notices: a pandas 3 grouping change, and that to_pandas collects (two
        # rows per brand here).
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", PandasAPIOnSparkAdviceWarning)
        return _arm_moments(outcomes_df)


def _arm_moments(outcomes_df: DataFrame):
    import pyspark.pandas as ps

    items = outcomes_df.select("outlet_id", "brand", "in_holdout", "y", "x").pandas_api()
    by_brand = items.groupby(["outlet_id", "brand", "in_holdout"], as_index=False).sum()
    overall = items.drop(columns="brand").groupby(["outlet_id", "in_holdout"], as_index=False).sum()
    overall["brand"] = ALL_BRANDS
    outlets = ps.concat([by_brand, overall[["outlet_id", "brand", "in_holdout", "y", "x"]]], ignore_index=True)
    outlets["n"] = 1
    outlets["xx"] = outlets["x"] * outlets["x"]
    outlets["xy"] = outlets["x"] * outlets["y"]
    outlets["yy"] = outlets["y"] * outlets["y"]
    moments = outlets.drop(columns="outlet_id").groupby(["brand", "in_holdout"], as_index=False).sum()
    return moments.to_pandas()


def _cov(n: float, sa: float, sb: float, sab: float) -> float:
    """Sample covariance from sums (n - 1 in the denominator)."""
    return (sab - sa * sb / n) / (n - 1) if n > 1 else math.nan


def _adjusted(arm, theta: float, mean_x: float) -> tuple[float, float]:
    """An arm's CUPED-adjusted mean and variance (from its sums)."""
    mean = arm.y / arm.n - theta * (arm.x / arm.n - mean_x)
    var = (
        _cov(arm.n, arm.y, arm.y, arm.yy)
        - 2 * theta * _cov(arm.n, arm.x, arm.y, arm.xy)
        + theta**2 * _cov(arm.n, arm.x, arm.x, arm.xx)
    )
    return mean, max(var, 0.0)


def _mde(treated, holdout, z: float, z_power: float) -> dict:
    """The lift per outlet the design detects at the power: (z + z_power) sd(x) sqrt(1/n_t + 1/n_h), with the
    pre-period outcome x's pooled variance (knowable before the week; CUPED would only narrow it)."""
    n_t, n_h = int(treated.n), int(holdout.n)
    if n_t < 2 or n_h < 2:
        return {}
    var_x = (
        _cov(n_t, treated.x, treated.x, treated.xx) * (n_t - 1)
        + _cov(n_h, holdout.x, holdout.x, holdout.xx) * (n_h - 1)
    ) / (n_t + n_h - 2)
    mde = (z + z_power) * math.sqrt(max(var_x, 0.0) * (1 / n_t + 1 / n_h))
    mean_x = (treated.x + holdout.x) / (n_t + n_h)
    return {"mde_units": mde, "mde_pct": 100 * mde / mean_x if mean_x > 0 else None}


def _brand_lift(treated, holdout, z: float) -> dict:
    n_t, n_h = int(treated.n), int(holdout.n)
    row = {"treated_outlets": n_t, "holdout_outlets": n_h, "treated_mean": treated.y / n_t, "theta": 0.0}
    row["holdout_mean"] = holdout.y / n_h
    if n_t < 2 or n_h < 2:
        return row  # no interval from fewer than two outlets in an arm
    n, sx, sy = n_t + n_h, treated.x + holdout.x, treated.y + holdout.y
    var_x = _cov(n, sx, sx, treated.xx + holdout.xx)
    theta = _cov(n, sx, sy, treated.xy + holdout.xy) / var_x if var_x > 0 else 0.0
    (mean_t, var_t), (mean_h, var_h) = _adjusted(treated, theta, sx / n), _adjusted(holdout, theta, sx / n)
    lift = mean_t - mean_h
    half = z * math.sqrt(var_t / n_t + var_h / n_h)
    row |= {"theta": theta, "lift_units": lift, "ci_low": lift - half, "ci_high": lift + half}
    if mean_h > 0:
        row |= {"lift_pct": 100 * lift / mean_h, "ci_low_pct": 100 * (lift - half) / mean_h}
        row["ci_high_pct"] = 100 * (lift + half) / mean_h
    return row


def cuped_lift(moments, confidence: float, power: float = 0.8) -> list[dict]:
    """Lift per brand from `arm_moments`: CUPED-adjusted difference in means with a normal interval, and the
    design's minimum detectable lift at the power.

    A brand without outlets in both arms gets no row.
    """
    z, z_power = NormalDist().inv_cdf(0.5 + confidence / 2), NormalDist().inv_cdf(power)
    out = []
    for brand, group in moments.groupby("brand"):
        arms = {bool(r.in_holdout): r for r in group.itertuples()}
        if False in arms and True in arms:
            lift = _brand_lift(arms[False], arms[True], z) | _mde(arms[False], arms[True], z, z_power)
            out.append({"brand": brand, "method": METHOD, **lift})
    return out


def promised(recommendations_df: DataFrame, week: date) -> dict[str, tuple[float, float, float]]:
    """Per brand and ALL: the treated arm's promised lift summed over its items (gross; ALL net of the rival
    brands' losses), with the items' bounds summed: (lift, low, high). Divide by the arm's outlets."""
    treated = recommendations_df.filter((F.col("week_start") == F.lit(week)) & ~F.col("in_holdout"))
    pct = lambda c: F.coalesce(F.col("planned_units") * F.col(c) / 100, F.lit(0.0))  # noqa: E731
    sums = [
        F.sum(F.coalesce("lift_units", F.lit(0.0))),
        F.sum(pct("lift_pct_low")),
        F.sum(pct("lift_pct_high")),
        F.sum(F.coalesce("cross_units", F.lit(0.0))),
    ]
    # One pass: per brand, and ALL as the brands' sums plus the rival brands' losses.
    rows = treated.groupBy(F.coalesce("brand", F.lit("unknown")).alias("brand")).agg(*sums).collect()
    out = {r["brand"]: (r[1], r[2], r[3]) for r in rows}
    if rows:
        cross = sum(r[4] for r in rows)
        out[ALL_BRANDS] = tuple(sum(r[i] for r in rows) + cross for i in (1, 2, 3))
    return out


def against_promise(lift: dict, promise: tuple[float, float, float] | None) -> dict:
    """The promise per treated outlet beside the measured lift, and whether the measured interval holds it."""
    n = lift.get("treated_outlets") or 0
    if promise is None or n == 0:
        return {}
    predicted, low, high = (v / n for v in promise)
    kept = None if lift.get("ci_low") is None else bool(lift["ci_low"] <= predicted <= lift["ci_high"])
    return {"predicted_lift_units": predicted, "predicted_low": low, "predicted_high": high, "promise_kept": kept}
