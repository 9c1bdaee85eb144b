"""Forecast evaluation in Spark: time splits, metrics, error breakdowns and driver what-ifs.

Metrics are sums over the rows (one aggregation each), so they never collect a table to the driver:
WAPE = sum|pred - actual| / sum(actual); bias = sum(pred - actual) / sum(actual);
RMSE on log units = sqrt(mean((log1p(pred) - log1p(actual))^2)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.ml.model_inputs import LABEL, Action, promo_state, with_candidate_actions


@dataclass(frozen=True)
class Split:
    """Train on every week up to `train_to`, evaluate on [test_from, test_to]."""

    name: str
    train_to: date
    test_from: date
    test_to: date


def time_splits(weeks: list[date], holdout_weeks: int, folds: int, min_train_weeks: int) -> list[Split]:
    """The holdout (latest N weeks) and rolling-origin folds before it, oldest first, holdout last.

    Fold k tests on the N weeks that end k*N weeks before the holdout and trains on everything earlier;
    folds with fewer than `min_train_weeks` earlier weeks are left out.
    """
    weeks = sorted(set(weeks))
    if len(weeks) < holdout_weeks + min_train_weeks:
        raise ValueError(
            f"{len(weeks)} weeks with actuals; need at least {holdout_weeks + min_train_weeks} "
            f"({holdout_weeks} holdout + {min_train_weeks} training)"
        )
    splits = []
    for k in range(folds, -1, -1):
        end = len(weeks) - k * holdout_weeks
        start = end - holdout_weeks
        if start < min_train_weeks:
            continue
        name = "holdout" if k == 0 else f"cv_{folds - k + 1}"
        splits.append(Split(name, weeks[start] - timedelta(days=7), weeks[start], weeks[end - 1]))
    return splits


def regression_metrics(df: DataFrame, predicted: str, actual: str = LABEL) -> dict[str, float]:
    """WAPE, bias, RMSE on log units, rows and NaN/null predictions, in one aggregation."""
    err = F.col(predicted) - F.col(actual)
    bad = F.col(predicted).isNull() | F.isnan(F.col(predicted))
    row = df.agg(
        F.sum(F.abs(err)).alias("abs_err"),
        F.sum(err).alias("err"),
        F.sum(F.col(actual)).alias("actual"),
        F.avg((F.log1p(F.col(predicted)) - F.log1p(F.col(actual))) ** 2).alias("mse_log"),
        F.count(F.lit(1)).alias("rows"),
        F.sum(bad.cast("long")).alias("bad"),
    ).first()
    assert row is not None
    total = row["actual"] or float("nan")
    return {
        "wape": (row["abs_err"] or 0.0) / total,
        "bias": (row["err"] or 0.0) / total,
        "rmse_log": math.sqrt(row["mse_log"]) if row["mse_log"] is not None else float("nan"),
        "rows": float(row["rows"]),
        "invalid_predictions": float(row["bad"] or 0),
    }


def error_breakdown(df: DataFrame, by: str, predicted: str, actual: str = LABEL) -> DataFrame:
    """Per value of `by` (a column name, or 'promo_state'): rows, actual, predicted, WAPE, bias."""
    key = promo_state().alias(by) if by == "promo_state" else F.col(by)
    err = F.col(predicted) - F.col(actual)
    return (
        df.groupBy(key)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(actual).alias("actual_units"),
            F.sum(predicted).alias("predicted_units"),
            F.try_divide(F.sum(F.abs(err)), F.sum(actual)).alias("wape"),
            F.try_divide(F.sum(err), F.sum(actual)).alias("bias"),
        )
        .orderBy(F.desc("actual_units"))
    )


def what_if_effects(predict: Callable[[DataFrame], DataFrame], rows_df: DataFrame) -> dict[str, float]:
    """Driver effects the model has learned, by controlled what-ifs on the same rows.

    - price elasticity: log(units at -10% price / units as is) / log(0.9), over all rows;
    - deal, feature, display lift: units with the promotion on / off for every row, minus 1.
    Each is a ratio of predicted totals, so it weighs rows by their volume, as the business does.
    """

    promotions = ("deal", "feature", "display")
    actions = [Action("as_is"), Action("price_-10", price_change=-0.10)] + [
        Action(f"{promo}_{state}", **{promo: state == "on"}) for promo in promotions for state in ("on", "off")
    ]
    # Every what-if in one prediction pass over the rows (one row per row and action).
    per_action = predict(with_candidate_actions(rows_df, actions)).groupBy("action").agg(F.sum("predicted_units"))
    total = {r[0]: float(r[1] or 0.0) for r in per_action.collect()}
    effects = {"price_elasticity": math.log(total["price_-10"] / total["as_is"]) / math.log(0.9)}
    for promo in promotions:
        on, off = total[f"{promo}_on"], total[f"{promo}_off"]
        effects[f"{promo}_lift"] = on / off - 1.0 if off else float("nan")
    return effects
