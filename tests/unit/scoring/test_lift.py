"""CUPED lift from arm moments, against a direct computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.scoring.lift import against_promise, arm_moments, cuped_lift


def _moments(x: np.ndarray, y: np.ndarray, holdout: np.ndarray, brand: str = "B") -> pd.DataFrame:
    rows = []
    for arm in (False, True):
        xs, ys = x[holdout == arm], y[holdout == arm]
        rows.append(
            {
                "brand": brand,
                "in_holdout": arm,
                "n": len(xs),
                "x": xs.sum(),
                "y": ys.sum(),
                "xx": (xs * xs).sum(),
                "xy": (xs * ys).sum(),
                "yy": (ys * ys).sum(),
            }
        )
    return pd.DataFrame(rows)


def test_cuped_matches_a_direct_computation_and_narrows_the_interval():
    rng = np.random.default_rng(3)
    n = 400
    x = rng.gamma(4.0, 25.0, n)  # pre-period level per outlet
    holdout = rng.random(n) < 0.5
    y = 1.1 * x + rng.normal(0, 5, n) + np.where(holdout, 0.0, 8.0)  # true lift 8 units
    [row] = cuped_lift(_moments(x, y, holdout), 0.95)
    theta = np.cov(x, y)[0, 1] / np.var(x, ddof=1)
    adj = y - theta * (x - x.mean())
    expected = adj[~holdout].mean() - adj[holdout].mean()
    se = np.sqrt(adj[~holdout].var(ddof=1) / (~holdout).sum() + adj[holdout].var(ddof=1) / holdout.sum())
    assert row["theta"] == pytest.approx(theta)
    assert row["lift_units"] == pytest.approx(expected)
    assert row["ci_high"] - row["lift_units"] == pytest.approx(1.959964 * se, rel=1e-5)
    assert row["ci_low"] < 8.0 < row["ci_high"]
    plain_se = np.sqrt(y[~holdout].var(ddof=1) / (~holdout).sum() + y[holdout].var(ddof=1) / holdout.sum())
    assert se < plain_se / 3  # the pre-period explains most of the between-outlet variance
    assert row["lift_pct"] == pytest.approx(100 * expected / adj[holdout].mean())
    n_t, n_h = (~holdout).sum(), holdout.sum()
    pooled = ((n_t - 1) * x[~holdout].var(ddof=1) + (n_h - 1) * x[holdout].var(ddof=1)) / (n - 2)
    mde = (1.959964 + 0.841621) * np.sqrt(pooled * (1 / n_t + 1 / n_h))  # 95% confidence, 80% power
    assert row["mde_units"] == pytest.approx(mde, rel=1e-5)


def test_a_brand_without_both_arms_gets_no_row():
    moments = _moments(np.array([1.0, 2.0]), np.array([1.0, 2.0]), np.array([False, False]))
    assert cuped_lift(moments[moments.in_holdout == False], 0.95) == []  # noqa: E712


def test_arm_moments_sum_items_per_outlet_and_brand_with_pyspark_pandas(spark):
    items = spark.createDataFrame(
        [
            ("O1", "A", False, 2.0, 1.0),
            ("O1", "A", False, 3.0, 1.0),
            ("O1", "B", False, 1.0, 0.0),
            ("O2", "A", True, 4.0, 2.0),
        ],
        "outlet_id string, brand string, in_holdout boolean, y double, x double",
    )
    m = arm_moments(items).set_index(["brand", "in_holdout"]).sort_index()
    assert m.loc[("A", False), ["n", "x", "y", "xy"]].tolist() == [1, 2.0, 5.0, 10.0]
    assert m.loc[("ALL", False), ["n", "x", "y", "yy"]].tolist() == [1, 2.0, 6.0, 36.0]
    assert m.loc[("ALL", True), ["n", "y"]].tolist() == [1, 4.0]


def test_the_promise_is_per_treated_outlet_and_kept_when_the_measured_interval_holds_it():
    lift = {"treated_outlets": 4, "ci_low": 1.0, "ci_high": 3.0}
    assert against_promise(lift, (8.0, 4.0, 12.0)) == {
        "predicted_lift_units": 2.0,
        "predicted_low": 1.0,
        "predicted_high": 3.0,
        "promise_kept": True,
    }
    assert against_promise(lift, (20.0, 16.0, 24.0))["promise_kept"] is False
    assert against_promise({**lift, "ci_low": None}, (8.0, 4.0, 12.0))["promise_kept"] is None
    assert against_promise(lift, None) == {}
