"""The back-test of a model version: read its gold_features version, estimate per origin, calibrate, write.

`lakehouse backtest` and the effects gate (`lakehouse effects --promote`, `lakehouse train`) call
`backtest_version`. Rows from the same inputs (gold_features version, config, contracts and code) are
kept, or copied from the version that computed them, as the effects are.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_BACKTEST, GOLD_FEATURES
from lakehouse.ml import backtest as B
from lakehouse.ml import effects
from lakehouse.ml.backtest_summary import overall, summary_line
from lakehouse.ml.versioned import rows_of_version, version_ids
from lakehouse.policy import MLConfig
from lakehouse.progress import Progress
from lakehouse.settings import Settings

BACKTEST_CODE = (
    "lakehouse.ml.backtest_flow",
    "lakehouse.ml.backtest",
    "lakehouse.ml.effects",
    "lakehouse.ml.panel",
    "lakehouse.ml.linear",
)


def settings_of(config: MLConfig) -> B.Settings:
    b = config.backtest
    return B.Settings(b.weeks, b.origins, b.baseline_weeks, b.min_controls, config.effects.confidence)


def effects_settings(config: MLConfig) -> effects.Settings:
    """The effects config, overall only and without cross prices: the back-test predicts own promotions."""
    return replace(effects.Settings.of(config.effects), segments=[], cross_prices=False)


def scored_promotions(features_df: DataFrame, config: MLConfig, progress: Progress) -> tuple[DataFrame | None, str]:
    """Every promotion of the back-test weeks with its predicted and realised lift, and the origins."""
    s = settings_of(config)
    weeks = [r["week_start"] for r in features_df.select("week_start").distinct().collect()]
    learner = effects.learner(config.effects)
    origins_blocks = B.blocks(weeks, s)

    def score_origin(block: tuple[date, date]) -> DataFrame:
        first, last = block
        progress(f"back-test origin {first}: effects from the weeks before it predict {first}..{last}")
        rows = effects.estimate(
            features_df.filter(F.col("week_start") < F.lit(first)), effects_settings(config), learner, (effects.DML,)
        )
        return B.with_predicted(B.promotion_outcomes(features_df, first, last, s), rows).localCheckpoint()

    # The origins are independent: each is estimated in its own thread, so one origin's small Spark jobs and
    # driver round trips fill the cores while another waits (make run on Dominick's: the cores were idle a
    # third of a sequential back-test). Each origin fits its nuisance models as `effects.nuisance_fit` says.
    with ThreadPoolExecutor(max_workers=max(1, min(len(origins_blocks), config.backtest.concurrent_origins))) as pool:
        parts = list(pool.map(score_origin, origins_blocks))
    origins = ",".join(str(first) for first, _ in origins_blocks)
    if not parts:
        return None, origins
    scored = parts[0]
    for part in parts[1:]:
        scored = scored.unionByName(part)
    return scored, origins


def backtest_version(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, force: bool, progress: Progress
) -> list[dict[str, Any]]:
    """The version's back-test rows: kept when stored from the same inputs, else computed and written."""
    sections = {"backtest": config.backtest, "effects": config.effects}
    ids = version_ids(settings, GOLD_BACKTEST, version, config.effects.confidence, sections, BACKTEST_CODE)
    features = ids["features_version"]

    def compute() -> list[dict[str, Any]]:
        features_df = delta_io.read(spark, GOLD_FEATURES, settings, features)
        scored, origins = scored_promotions(features_df, config, progress)
        calibrated = B.calibration(spark, scored, config.effects.confidence) if scored is not None else []
        return [{**r, "origins": origins} for r in calibrated]

    rows, written = rows_of_version(spark, settings, GOLD_BACKTEST, ids, force, compute, progress)
    if written:
        progress("back-test: " + summary_line(rows))
        _log_to_run(version.run_id, rows)
    return rows


def _log_to_run(run_id: str, rows: list[dict[str, Any]]) -> None:
    """The calibration table, the overall slope as metrics and a predicted-vs-realised plot, on the model's run."""
    from contextlib import nullcontext

    import mlflow
    import pandas as pd

    active = mlflow.active_run()
    with nullcontext() if active is not None and active.info.run_id == run_id else mlflow.start_run(run_id=run_id):
        mlflow.log_table(pd.DataFrame(rows), "backtest/calibration.json")
        r = overall(rows)
        if r is not None:
            metrics = {"backtest_predicted_pct": r["predicted_pct"], "backtest_realised_pct": r["realised_pct"]}
            if r["slope"] is not None:
                metrics["backtest_slope"] = r["slope"]
            mlflow.log_metrics(metrics)
        _log_plot(rows)


def _log_plot(rows: list[dict[str, Any]]) -> None:
    """Mean predicted vs mean realised lift per brand x action, with the realised interval and the diagonal."""
    import mlflow
    from matplotlib.figure import Figure  # not pyplot: its global state is not thread-safe (effects plot too)

    cells = [r for r in rows if r["brand"] != B.ALL and r["action"] != B.ALL]
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    for action in sorted({r["action"] for r in cells}):
        pts = [r for r in cells if r["action"] == action]
        low = [r["realised_pct"] - (r["realised_pct_low"] or r["realised_pct"]) for r in pts]
        high = [(r["realised_pct_high"] or r["realised_pct"]) - r["realised_pct"] for r in pts]
        predicted, realised = [r["predicted_pct"] for r in pts], [r["realised_pct"] for r in pts]
        ax.errorbar(predicted, realised, yerr=[low, high], fmt="o", capsize=3, label=action)
    values = [v for r in cells for v in (r["predicted_pct"], r["realised_pct"])] or [0.0, 1.0]
    edge = [min(values), max(values)]
    ax.plot(edge, edge, color="grey", linewidth=1)
    ax.set_xlabel("predicted lift % (effects from earlier weeks)")
    ax.set_ylabel("realised lift %")
    ax.legend(loc="upper left")
    fig.tight_layout()
    mlflow.log_figure(fig, "backtest/calibration.png")


def stored(spark: SparkSession, settings: Settings, name: str, version: str) -> list[dict[str, Any]]:
    """The back-test rows stored for a version (empty when there are none)."""
    if not delta_io.exists(spark, GOLD_BACKTEST, settings):
        return []
    df = delta_io.read(spark, GOLD_BACKTEST, settings).filter(
        (F.col("model_name") == F.lit(name)) & (F.col("model_version") == F.lit(version))
    )
    return [r.asDict() for r in df.collect()]
