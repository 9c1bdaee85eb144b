"""Train and evaluate on the gold feature table: rolling-origin folds, a sealed holdout, baselines, what-ifs.

Everything here takes DataFrames and returns models and small dicts; lakehouse/ml/train_flow.py reads the tables
and logs the results to MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.ml import modeling
from lakehouse.ml.evaluation import Split, regression_metrics, time_splits, what_if_effects
from lakehouse.ml.model_inputs import LABEL, NUMERIC_FEATURES, filter_weeks
from lakehouse.policy import TrainingConfig

BASELINES = ("last_week", "last_year", "elasticity")


@dataclass
class TrainResult:
    """The model fitted on the weeks before the holdout, and the evidence about it."""

    model: PipelineModel
    numeric: tuple[str, ...]
    holdout: Split
    train_weeks: tuple[date, date]  # first and last week the final model saw
    holdout_metrics: dict[str, float]
    cv_metrics: dict[str, dict[str, float]]
    baseline_metrics: dict[str, dict[str, float]]
    elasticity_coefficients: dict[str, float]
    effects: dict[str, float]
    importance: dict[str, float]
    holdout_predictions: DataFrame = field(repr=False)  # holdout rows + predicted_units + baselines

    @property
    def beats_baselines(self) -> bool:
        return all(self.holdout_metrics["wape"] < m["wape"] for m in self.baseline_metrics.values())


def labelled_rows(features_df: DataFrame) -> DataFrame:
    """Feature rows whose label (units this week) is known."""
    return features_df.filter(F.col(LABEL).isNotNull())


def weeks_with_actuals(labelled_df: DataFrame) -> list[date]:
    """The distinct weeks (a few hundred at most, so collecting them is bounded)."""
    return sorted(r["week_start"] for r in labelled_df.select("week_start").distinct().collect())


def week_span(df: DataFrame) -> tuple[date, date]:
    row = df.agg(F.min("week_start").alias("a"), F.max("week_start").alias("b")).first()
    assert row is not None
    return row["a"], row["b"]


def _fit(cfg: TrainingConfig, numeric: tuple[str, ...], train_df: DataFrame) -> PipelineModel:
    pipeline = modeling.build_pipeline(cfg.estimator, cfg.estimator_params, numeric, cfg.num_workers, cfg.monotone)
    return modeling.fit(pipeline, train_df)


def _baselines(train_df: DataFrame, test_df: DataFrame) -> tuple[DataFrame, dict[str, float]]:
    """Holdout rows with `pred_last_week`, `pred_last_year`, `pred_elasticity`; and the elasticity model."""
    mean_row = train_df.agg(F.avg(LABEL).alias("m")).first()
    assert mean_row is not None
    elasticity = modeling.build_elasticity_pipeline().fit(modeling.with_log_label(train_df))
    with_naive = modeling.with_naive_predictions(test_df, float(mean_row["m"] or 0.0))
    scored = elasticity.transform(with_naive).select(*with_naive.columns, "pred_elasticity")
    return scored, modeling.elasticity_coefficients(elasticity)


def train_and_evaluate(
    features_df: DataFrame, cfg: TrainingConfig, progress: Callable[[str], Any] = print
) -> TrainResult:
    """Rolling-origin folds, then the model on all weeks before the holdout, scored on the holdout.

    The holdout is the latest `holdout_weeks` weeks with actuals; nothing from them reaches a fit.
    """
    labelled = labelled_rows(features_df)
    splits = time_splits(weeks_with_actuals(labelled), cfg.holdout_weeks, cfg.cv_folds, cfg.min_train_weeks)
    *folds, holdout = splits
    train_df = filter_weeks(labelled, None, holdout.train_to)
    holdout_df = filter_weeks(labelled, holdout.test_from, holdout.test_to)
    numeric = modeling.usable_numeric(train_df, NUMERIC_FEATURES)

    def fold_metrics(split: Split) -> dict[str, float]:
        fold_model = _fit(cfg, numeric, filter_weeks(labelled, None, split.train_to))
        fold_test = filter_weeks(labelled, split.test_from, split.test_to)
        metrics = regression_metrics(modeling.predict(fold_model, fold_test), modeling.PREDICTION)
        progress(f"{split.name}: weeks {split.test_from}..{split.test_to} wape={metrics['wape']:.4f}")
        return metrics

    # The folds and the final model are independent fits: `concurrent_fits` of them at once, each its own
    # Spark jobs from a thread (a fit's passes over the rows fill the cores while another waits at its barrier).
    with ThreadPoolExecutor(max_workers=max(1, cfg.concurrent_fits)) as pool:
        final = pool.submit(_fit, cfg, numeric, train_df)
        cv_metrics = dict(zip([f.name for f in folds], pool.map(fold_metrics, folds), strict=True))
        model = final.result()
    scored, coefficients = _baselines(train_df, holdout_df)
    predictions = modeling.predict(model, scored).cache()  # read by every metric, table, plot and the gate
    holdout_metrics = regression_metrics(predictions, modeling.PREDICTION)
    baseline_metrics = {name: regression_metrics(predictions, f"pred_{name}") for name in BASELINES}
    progress(
        f"holdout {holdout.test_from}..{holdout.test_to}: wape={holdout_metrics['wape']:.4f} "
        + " ".join(f"{n}={m['wape']:.4f}" for n, m in baseline_metrics.items())
    )
    effects = what_if_effects(lambda df: modeling.predict(model, df), holdout_df)
    return TrainResult(
        model=model,
        numeric=numeric,
        holdout=holdout,
        train_weeks=week_span(train_df),
        holdout_metrics=holdout_metrics,
        cv_metrics=cv_metrics,
        baseline_metrics=baseline_metrics,
        elasticity_coefficients=coefficients,
        effects=effects,
        importance=modeling.feature_importance(model, numeric),
        holdout_predictions=predictions,
    )


def cv_summary(cv_metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean and spread of the folds' WAPE (empty when there were no folds)."""
    wapes = [m["wape"] for m in cv_metrics.values()]
    if not wapes:
        return {}
    mean = sum(wapes) / len(wapes)
    return {"cv_wape_mean": mean, "cv_wape_std": (sum((w - mean) ** 2 for w in wapes) / len(wapes)) ** 0.5}
