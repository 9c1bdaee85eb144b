"""Causal effects of price and promotions per brand and outlet segment: double ML and a fixed-effects baseline.

Both read the same panel (`lakehouse.ml.panel`) and end in the same least-squares regression per brand
and segment, clustered by outlet (`lakehouse.ml.linear`):

- Double ML (Chernozhukov et al. 2018, partially linear model): log units and every treatment are
  demeaned within outlet x product (fixed effects), then predicted from the controls by xgboost models
  (native ones in Spark tasks, or xgboost.spark) cross-fitted on contiguous blocks of weeks. The effects
  are the coefficients of the outcome's residual on the treatments' residuals. Cross prices use the
  rival brands' own-price residuals at the same outlet and week.
- Fixed effects (the transparent baseline): log units on the treatments and the rival brands' log
  prices, all demeaned by outlet x product and by week.

Identification: given the controls (season, outlet attributes, units two weeks and a year back, the
reference price) and the outlet x product's own level, this week's price and
promotions are as good as random. Demand shocks the retailer saw and the controls do not stay in.
An effect without support (too few treated rows, too little price variation) is not estimated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, DoubleType, IntegerType, StringType, StructField, StructType

from lakehouse.ml import panel as P
from lakehouse.ml.linear import GroupFit, grouped_ols
from lakehouse.policy import IN_TASKS, XGBOOST_SPARK, EffectsConfig

if TYPE_CHECKING:
    import pandas as pd

DML, FIXED_EFFECTS = "dml", "fixed_effects"
IDENTIFIED_BY = {
    DML: "residuals on residuals: outlet x product means removed, cross-fitted xgboost on the controls",
    FIXED_EFFECTS: "log-log least squares with outlet x product and week fixed effects",
}

# A nuisance learner: (rows with a `fold` column, controls, targets, folds) -> {(fold, target): a fitted
# xgboost Booster predicting the target from the controls (in that order), trained on the other folds' rows}.
Learner = Callable[[DataFrame, list[str], list[str], int], dict[tuple[int, str], Any]]


@dataclass(frozen=True)
class Settings:
    """How effects are estimated (the `effects` section of the config)."""

    segments: list[str]
    folds: int
    min_group_rows: int
    min_treated_rows: int
    min_treated_share: float
    min_price_sd: float
    confidence: float
    cross_prices: bool = True

    @classmethod
    def of(cls, c: EffectsConfig) -> Settings:
        """The `effects` section of the config."""
        return cls(
            c.segments, c.folds, c.min_group_rows, c.min_treated_rows, c.min_treated_share, c.min_price_sd,
            c.confidence, c.cross_prices,
        )  # fmt: skip


def learner(c: EffectsConfig) -> Learner:
    """The configured nuisance learner (`effects.nuisance_fit`): native xgboost in Spark tasks, or xgboost.spark."""
    if c.nuisance_fit == IN_TASKS:
        return task_learner(c.nuisance_params)
    if c.nuisance_fit == XGBOOST_SPARK:
        return xgboost_spark_learner(c.nuisance_params, c.nuisance_workers, c.concurrent_fits)
    raise ValueError(f"unknown nuisance fit {c.nuisance_fit!r}: expected {IN_TASKS!r} or {XGBOOST_SPARK!r}")


def task_learner(params: dict[str, Any]) -> Learner:
    """Every fold's models fitted by native xgboost in one Spark task per fold, one thread each.

    Each row is sent to the tasks of the folds it is not in (folds - 1 copies of the needed columns), so a
    fold's training rows must fit one task's memory. That is what xgboost.spark with one worker does too,
    but without its barrier job and tracker per model: on 106k Dominick's rows a warm one-worker
    xgboost.spark fit took 1.3-3 s, the same model 0.2 s natively.
    """

    def fit_many(df: DataFrame, controls: list[str], targets: list[str], folds: int) -> dict[tuple[int, str], Any]:
        import xgboost as xgb

        others = F.array(*[F.lit(k) for k in range(folds)])
        keys = [*P.ITEM, "week_start"]
        rows = df.select(*keys, "fold", *controls, *targets).withColumn("model_fold", F.explode(others))
        schema = StructType(
            [StructField("model_fold", IntegerType()), StructField("target", StringType()),
             StructField("booster", BinaryType())]
        )  # fmt: skip

        def fit(group: pd.DataFrame) -> pd.DataFrame:
            import numpy as np
            import pandas as pd
            import xgboost as xgb

            # The rows in key order: a shuffle delivers them in another order on a cluster than locally,
            # and with row subsampling the order changes the model.
            group = group.sort_values(keys, kind="stable")
            x = group[controls].to_numpy(dtype="float32", na_value=np.nan)
            models = []
            for target in targets:
                model = xgb.XGBRegressor(**params, n_jobs=1, missing=np.nan)
                model.fit(x, group[target].to_numpy(dtype="float64"))
                models.append(bytes(model.get_booster().save_raw("ubj")))
            fold = int(group["model_fold"].iloc[0])
            return pd.DataFrame({"model_fold": fold, "target": targets, "booster": models})

        fitted = (
            rows.filter(F.col("model_fold") != F.col("fold"))
            .drop("fold")
            .groupBy("model_fold")
            .applyInPandas(fit, schema)
            .collect()
        )
        return {(int(r["model_fold"]), r["target"]): xgb.Booster(model_file=bytearray(r["booster"])) for r in fitted}

    return fit_many


def xgboost_spark_learner(params: dict[str, Any], num_workers: int, concurrent: int = 1) -> Learner:
    """xgboost.spark regressors, each fit distributed over `num_workers` Spark tasks; their boosters.

    For folds too large for one task. The folds x targets models are fitted `concurrent` at a time, each a
    distributed Spark job submitted from its own thread (a fit spends seconds starting up, which the other
    fits' work fills).
    """

    def fit(train_df: DataFrame, features: list[str], label: str) -> Any:
        import logging

        from xgboost.spark import SparkXGBRegressor  # imported here: it pulls in xgboost and sklearn

        logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
        model = SparkXGBRegressor(
            features_col=features,
            label_col=label,
            num_workers=num_workers,
            missing=float("nan"),
            verbose=False,
            **params,
        ).fit(train_df)
        return model.get_booster()

    def fit_many(df: DataFrame, controls: list[str], targets: list[str], folds: int) -> dict[tuple[int, str], Any]:
        jobs = [(k, t) for k in range(folds) for t in targets]
        with ThreadPoolExecutor(max_workers=max(1, concurrent)) as pool:
            fitted = pool.map(lambda job: fit(df.filter(F.col("fold") != job[0]), controls, job[1]), jobs)
            return dict(zip(jobs, fitted, strict=True))

    return fit_many


def cross_fitted_residuals(
    df: DataFrame, targets: list[str], controls: list[str], folds: int, fit: Learner
) -> DataFrame:
    """`r_<target>` = target - its prediction from the controls by a model fitted on the other folds.

    The predictions are one pass over the rows, every booster applied where its fold is held out.
    """
    boosters = fit(df, controls, targets, folds)
    residuals = [f"r_{t}" for t in targets]
    schema = StructType([*df.schema.fields, *[StructField(r, DoubleType()) for r in residuals]])

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import numpy as np

        for batch in batches:
            x = batch[controls].to_numpy(dtype="float32", na_value=np.nan)
            fold = batch["fold"].to_numpy()
            for target, residual in zip(targets, residuals, strict=True):
                predicted = np.full(len(batch), np.nan)
                for k in np.unique(fold):
                    held = fold == k
                    predicted[held] = boosters[(int(k), target)].inplace_predict(x[held], missing=np.nan)
                batch[residual] = batch[target].to_numpy(dtype="float64") - predicted
            yield batch

    return df.mapInPandas(predict, schema)  # type: ignore[arg-type]  # pyspark types it with its own pandas stub


@dataclass(frozen=True)
class Support:
    """Per brand and segment: rows, and per treatment the treated rows and share (price: rows that vary)."""

    rows: dict[tuple[str, str], int]
    treated: dict[tuple[str, str, str], int]
    price_sd: dict[tuple[str, str], float]

    def share(self, key: tuple[str, str], effect: str) -> float:
        return self.treated.get((*key, effect), 0) / max(self.rows.get(key, 0), 1)


def support(segmented_df: DataFrame) -> Support:
    """One aggregation: rows per group, treated rows per binary treatment, own-price variation.

    Price variation is the standard deviation of log price within outlet x product (`t_price` demeaned),
    and a row "varies" when it is more than 1% off its item's mean.
    """
    binary = [F.sum(F.col(c)).alias(name) for name, c in P.BINARY.items()]
    rows = (
        segmented_df.groupBy("brand", "segment")
        .agg(
            F.count(F.lit(1)).alias("_rows"),
            F.stddev("t_price_within").alias("_price_sd"),
            F.sum((F.abs("t_price_within") > 0.01).cast("int")).alias(P.OWN_PRICE),
            *binary,
        )
        .collect()
    )
    out = Support({}, {}, {})
    for r in rows:
        key = (r["brand"], r["segment"])
        out.rows[key] = int(r["_rows"])
        out.price_sd[key] = float(r["_price_sd"] or 0.0)
        for effect in P.TREATMENTS:
            out.treated[(*key, effect)] = int(r[effect] or 0)
    return out


def supported(s: Support, key: tuple[str, str], effect: str, cfg: Settings) -> bool:
    """Enough rows in the group, enough treated rows and share (or price variation for own price)."""
    if s.rows.get(key, 0) < cfg.min_group_rows:
        return False
    if effect == P.OWN_PRICE:
        return s.price_sd.get(key, 0.0) >= cfg.min_price_sd and s.treated.get((*key, effect), 0) >= cfg.min_treated_rows
    treated = s.treated.get((*key, effect), 0)
    return treated >= cfg.min_treated_rows and s.share(key, effect) >= cfg.min_treated_share


def regressors(
    s: Support, brands: P.Brands, cfg: Settings, own: dict[str, str], cross: Callable[[str], str]
) -> dict[tuple[str, str], dict[str, str]]:
    """Per group: effect name -> column, for the supported treatments and the rival brands' prices."""
    out = {}
    for key in s.rows:
        brand = key[0]
        chosen = {effect: column for effect, column in own.items() if supported(s, key, effect, cfg)}
        if cfg.cross_prices and P.OWN_PRICE in chosen:  # a rival's price is supported where the own price is
            chosen |= {P.CROSS_PREFIX + rival: cross(rival) for rival in brands.rivals(brand)}
        if chosen:
            out[key] = chosen
    return out


def _fit(df: DataFrame, y: str, chosen: dict[tuple[str, str], dict[str, str]]) -> dict[tuple, tuple[dict, GroupFit]]:
    fits = grouped_ols(df, ["brand", "segment"], y, {k: tuple(v.values()) for k, v in chosen.items()}, "outlet_id")
    return {f.key: (chosen[f.key], f) for f in fits}


def estimate(
    features_df: DataFrame, cfg: Settings, learner: Learner | None, methods: tuple[str, ...] = (DML, FIXED_EFFECTS)
) -> list[dict[str, Any]]:
    """Effect rows (`effect_rows`) of each method on the gold feature rows given.

    The frames it caches are released before it returns: jobs may share one session (`make run`).
    """
    cached: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        cached.append(df.cache())
        return df

    try:
        panel = P.effect_panel(features_df)
        controls = P.control_columns(panel)
        brands = P.brands_of(panel)
        segments = P.segment_definitions(panel, cfg.segments)
        panel = keep(P.with_folds(panel, cfg.folds).withColumn("t_price_within", F.col("t_price")))
        panel = P.with_demeaned(panel, ["t_price_within"], P.ITEM)
        s = support(P.with_segments(panel, segments))
        # Treatments some brand and segment can estimate (Dominick's has no display): no model for the others.
        active = {e: c for e, c in P.TREATMENTS.items() if any(supported(s, key, e, cfg) for key in s.rows)}
        out: list[dict[str, Any]] = []
        if FIXED_EFFECTS in methods:
            columns = [P.Y, *active.values()]
            if cfg.cross_prices:
                panel_fe = P.with_cross_prices(panel, brands, "t_price")
                columns += [brands.column(b) for b in brands.names]
            else:
                panel_fe = panel
            needed = [*P.ITEM, "week_start", "brand", *segments, *columns]  # what the regressions read
            demeaned = P.two_way_demeaned(panel_fe.select(*dict.fromkeys(needed)), columns)
            cached.append(demeaned)
            fe = P.with_segments(demeaned, segments)
            chosen = regressors(s, brands, cfg, active, brands.column)
            out += effect_rows(FIXED_EFFECTS, _fit(fe, P.Y, chosen), s, cfg, segments)
        if DML in methods:
            assert learner is not None, "double ML needs a nuisance learner"
            targets = [P.Y, *active.values()]
            # Only what the nuisance models and the final regressions read, cached: every fit scans it.
            needed = [*P.ITEM, "week_start", "brand", "fold", *segments, *controls, *targets]
            within = keep(P.with_demeaned(panel, targets, P.ITEM).select(*dict.fromkeys(needed)))
            residuals = cross_fitted_residuals(within, targets, controls, cfg.folds, learner)
            if cfg.cross_prices and P.OWN_PRICE in active:
                residuals = P.with_cross_prices(residuals, brands, "r_t_price")
            dml = keep(P.with_segments(residuals, segments))
            own = {effect: f"r_{column}" for effect, column in active.items()}
            chosen = regressors(s, brands, cfg, own, brands.column)
            out += effect_rows(DML, _fit(dml, f"r_{P.Y}", chosen), s, cfg, segments)
        return out
    finally:
        for df in cached:
            df.unpersist()


def effect_rows(
    method: str,
    fits: dict[tuple, tuple[dict, GroupFit]],
    s: Support,
    cfg: Settings,
    segments: dict[str, float | None],
) -> list[dict]:
    """One row per brand, segment and effect: the estimate and its interval, or `unsupported`.

    Each estimated row also carries its covariances with the other effects of the same regression (for
    the delta method downstream) and, for a numeric segment, the median its outlets were split at.
    """
    z = NormalDist().inv_cdf(0.5 + cfg.confidence / 2)
    rows = []
    for key in sorted(s.rows):
        chosen, fit = fits.get(key, ({}, None))
        estimates = dict(zip(fit.regressors, zip(fit.estimate, fit.std_error, strict=True), strict=True)) if fit else {}
        effect_of = {column: effect for effect, column in chosen.items()}
        covariances = (
            {c: {effect_of[o]: v for o, v in others.items()} for c, others in fit.covariances().items()} if fit else {}
        )
        split = segments.get(key[1].split(":")[0]) if ":" in key[1] else None
        effects = [*P.TREATMENTS, *sorted(e for e in chosen if e.startswith(P.CROSS_PREFIX))]
        for effect in effects:
            column = chosen.get(effect)
            est, se = estimates.get(column, (None, None)) if column else (None, None)
            low, high = (None, None) if est is None or se is None else (est - z * se, est + z * se)
            row = {
                "brand": key[0],
                "segment": key[1],
                "effect": effect,
                "method": method,
                "estimate": est,
                "std_error": se,
                "ci_low": low,
                "ci_high": high,
                "rows": s.rows[key],
                "treated_share": None if effect.startswith(P.CROSS_PREFIX) else s.share(key, effect),
                "status": "estimated" if est is not None else ("unsupported" if column is None else "singular"),
                "identified_by": IDENTIFIED_BY[method],
                "covariances": covariances.get(column) if est is not None and column else None,
                "segment_split": split,
            }
            rows.append(row | lift_pct(effect, row))
    return rows


def lift_pct(effect: str, row: dict[str, Any]) -> dict[str, Any]:
    """A promotion's effect in percent of units (exp(b) - 1); prices are elasticities and get none."""
    if effect not in P.BINARY or row["estimate"] is None:
        return {"lift_pct": None, "lift_pct_low": None, "lift_pct_high": None}
    return {
        k: 100 * (math.exp(row[src]) - 1)
        for k, src in (("lift_pct", "estimate"), ("lift_pct_low", "ci_low"), ("lift_pct_high", "ci_high"))
    }
