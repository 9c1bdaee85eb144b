"""Least squares per group on Spark with standard errors clustered by a column (e.g. the outlet).

Two aggregations and a small solve on the driver, so driver memory depends on the number of groups and
regressors, never on rows or clusters:

1. per group, X'X and X'y (one pass);
2. with theta broadcast back, per group and cluster the score s_c = sum of x_i * e_i, then per group
   sum_c s_c s_c' (one pass).

V = (X'X)^-1 (sum_c s_c s_c') (X'X)^-1 * G/(G-1) * (N-1)/(N-K): the CR1 sandwich statsmodels and Stata use.
No intercept: the inputs are residuals (double ML) or demeaned (fixed effects), whose means are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


@dataclass(frozen=True)
class GroupFit:
    """The fit of one group: estimates, clustered standard errors and covariances of its regressors, in order."""

    key: tuple
    regressors: tuple[str, ...]
    estimate: tuple[float, ...]
    std_error: tuple[float, ...]
    rows: int
    clusters: int
    covariance: tuple[tuple[float, ...], ...] = ()

    def covariances(self) -> dict[str, dict[str, float]]:
        """regressor -> the other regressors -> the covariance of their estimates."""
        return {
            a: {b: self.covariance[i][j] for j, b in enumerate(self.regressors) if j != i}
            for i, a in enumerate(self.regressors)
        }


def _x(name: str) -> F.Column:
    # A missing regressor value is no variation (0 in residual or demeaned terms).
    return F.coalesce(F.col(name).cast("double"), F.lit(0.0))


def grouped_ols(
    df: DataFrame,
    group_cols: list[str],
    y: str,
    regressors: dict[tuple, tuple[str, ...]],
    cluster: str,
) -> list[GroupFit]:
    """Regress `y` on each group's own regressors (`regressors[key]`, a subset of the frame's columns).

    Groups missing from `regressors`, with fewer rows than regressors, fewer than two clusters or a
    singular X'X get no fit.
    """
    spark = df.sparkSession
    names = sorted({r for rs in regressors.values() for r in rs})
    if not names:
        return []
    idx = {n: i for i, n in enumerate(names)}
    first = df.groupBy(*group_cols).agg(
        F.count(F.lit(1)).alias("_n"),
        F.countDistinct(cluster).alias("_g"),
        *[F.sum(_x(names[a]) * _x(names[b])).alias(f"xx_{a}_{b}") for a, b in _upper(len(names))],
        *[F.sum(_x(n) * F.col(y)).alias(f"xy_{i}") for i, n in enumerate(names)],
    )
    solved: dict[tuple, tuple[list[int], np.ndarray, np.ndarray, int, int]] = {}
    for row in first.collect():
        key = tuple(row[c] for c in group_cols)
        used = regressors.get(key)
        if not used or row["_n"] <= len(used) or row["_g"] < 2:
            continue
        cols = [idx[r] for r in used]
        xx = np.zeros((len(names), len(names)))
        for a, b in _upper(len(names)):
            xx[a, b] = xx[b, a] = row[f"xx_{a}_{b}"]
        xy = np.array([row[f"xy_{i}"] for i in range(len(names))])
        sub = xx[np.ix_(cols, cols)]
        if np.linalg.matrix_rank(sub) < len(cols):
            continue
        bread = np.linalg.inv(sub)
        solved[key] = (cols, bread, bread @ xy[cols], int(row["_n"]), int(row["_g"]))
    if not solved:
        return []
    meat = _cluster_meat(spark, df, group_cols, y, names, solved, cluster)
    fits = []
    for key, (_, bread, theta, n, g) in solved.items():
        k = len(theta)
        scale = g / (g - 1) * (n - 1) / max(n - k, 1)
        cov = scale * bread @ meat[key] @ bread
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        fits.append(
            GroupFit(
                key,
                regressors[key],
                tuple(map(float, theta)),
                tuple(map(float, se)),
                n,
                g,
                tuple(tuple(map(float, row)) for row in cov),
            )
        )
    return fits


def _cluster_meat(
    spark: SparkSession,
    df: DataFrame,
    group_cols: list[str],
    y: str,
    names: list[str],
    solved: dict[tuple, tuple[list[int], np.ndarray, np.ndarray, int, int]],
    cluster: str,
) -> dict[tuple, np.ndarray]:
    """sum over clusters of s_c s_c' per group (over all regressors), s_c the cluster's sum of x_i * e_i."""
    full = []
    for key, (cols, _, theta, _, _) in solved.items():
        values = [0.0] * len(names)  # a regressor the group does not use has theta 0
        for i, v in zip(cols, theta, strict=True):
            values[i] = float(v)
        full.append((*key, *values))
    thetas = spark.createDataFrame(full, [*group_cols, *[f"_theta_{i}" for i in range(len(names))]])
    fitted = sum((_x(n) * F.col(f"_theta_{i}") for i, n in enumerate(names)), F.lit(0.0))
    scores = (
        df.join(F.broadcast(thetas), group_cols, "inner")
        .withColumn("_e", F.col(y) - fitted)
        .groupBy(*group_cols, cluster)
        .agg(*[F.sum(_x(n) * F.col("_e")).alias(f"_s{i}") for i, n in enumerate(names)])
    )
    outer = scores.groupBy(*group_cols).agg(
        *[F.sum(F.col(f"_s{a}") * F.col(f"_s{b}")).alias(f"_m_{a}_{b}") for a, b in _upper(len(names))]
    )
    meat = {}
    for row in outer.collect():
        key = tuple(row[c] for c in group_cols)
        m = np.zeros((len(names), len(names)))
        for a, b in _upper(len(names)):
            m[a, b] = m[b, a] = row[f"_m_{a}_{b}"]
        cols = solved[key][0]
        meat[key] = m[np.ix_(cols, cols)]
    return meat


def _upper(k: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(k) for b in range(a, k)]
