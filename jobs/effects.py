"""Estimate the causal effects of price and promotions for a model version and write them to gold_effects.

The effects come from the same gold_features version the model was trained on (the run's lineage tag):
double ML (xgboost.spark nuisance models, cross-fitted on blocks of weeks) and a fixed-effects
baseline, per brand and outlet segment, with standard errors clustered by outlet (lakehouse.ml.effects).
They are logged to the model's MLflow run too (a table and a coefficient plot). A re-run for the same
model version, data, config and code writes nothing. `--show` prints what is stored, without Spark.

For a version waiting on its gate (trained with --no-promote, as the train DAG does), the effects
complete the verdict: signs and stability against the champion's effects (lakehouse.ml.gate.decide_effects).
With --promote, a version whose whole gate passed becomes @champion.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.cli.args import run_main
from lakehouse.errors import DataError
from lakehouse.io import delta_log, tracking
from lakehouse.io.catalog import GOLD_EFFECTS, GOLD_FEATURES
from lakehouse.ml import effects_report, promotion, registry
from lakehouse.ml.gate import GateResult, decide_backtest, decide_effects
from lakehouse.policy import MLConfig, load_ml_config
from lakehouse.progress import Progress
from lakehouse.settings import Settings, load_settings

# Spark is imported where it is used: `--show` reads the table with delta-rs and starts no JVM.
if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EFFECTS_CODE = ("jobs.effects", "lakehouse.ml.effects", "lakehouse.ml.panel", "lakehouse.ml.linear")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", help="the model version (default: the latest trained, @challenger)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    parser.add_argument("--force", action="store_true", help="estimate again even if these inputs were estimated")
    parser.add_argument("--show", action="store_true", help="print the stored effects of the version (no estimation)")
    parser.add_argument("--promote", action="store_true", help="promote the version if its whole gate passed")


def _settings(config: MLConfig) -> Any:
    from lakehouse.ml import effects

    c = config.effects
    return effects.Settings(
        c.segments,
        c.folds,
        c.min_group_rows,
        c.min_treated_rows,
        c.min_treated_share,
        c.min_price_sd,
        c.confidence,
        c.cross_prices,
    )


def _stored(spark: SparkSession, settings: Settings, name: str, version: str) -> DataFrame | None:
    """The stored rows of one version of the model; None without a table."""
    from pyspark.sql import functions as F

    from lakehouse.io import delta_io

    if not delta_io.exists(spark, GOLD_EFFECTS, settings):
        return None
    rows = delta_io.read(spark, GOLD_EFFECTS, settings).filter(F.col("model_name") == name)
    return rows.filter(F.col("model_version") == version)


def estimate_version(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, force: bool, progress: Progress
) -> list[dict[str, Any]]:
    """The version's effect rows: stored ones when their inputs are these, else estimated and written.

    Effects are a function of the data, not of the forecast: a version trained on the same gold_features
    version (a retrain, a new model config) takes the rows another version has from the same inputs.
    """

    from lakehouse.io import delta_io
    from lakehouse.ml import effects
    from lakehouse.ml.versioned import rows_of_version, version_ids

    ids = version_ids(
        settings, GOLD_EFFECTS, version, config.effects.confidence, {"effects": config.effects}, EFFECTS_CODE
    )
    name, features = ids["model_name"], ids["features_version"]

    def estimate() -> list[dict[str, Any]]:
        progress(f"estimating effects of {name} version {version.version} on {GOLD_FEATURES.name} version {features}")
        features_df = delta_io.read(spark, GOLD_FEATURES, settings, features)
        return effects.estimate(features_df, _settings(config), effects.learner(config.effects))

    rows, written = rows_of_version(spark, settings, GOLD_EFFECTS, ids, force, estimate, progress)
    if written:
        _log_to_run(version.run_id, rows)
    return rows


def estimate_and_gate(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, progress: Progress
) -> GateResult:
    """The version's effects (estimated unless stored), then the effects half of its gate, recorded on it."""
    rows = estimate_version(spark, settings, config, version, False, progress)
    return gate_effects(spark, settings, config, version, rows, progress)


def gate_effects(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, rows: list[dict], progress: Progress
) -> GateResult:
    """The effects half of the version's gate (signs; stability against the champion's effects; the back-test's
    calibration when `backtest.origins` > 0), recorded on it."""
    name = config.registry.model_name
    champion = registry.alias_version(name, registry.CHAMPION)
    before = None
    if champion is not None and champion != str(version.version):
        stored = _stored(spark, settings, name, champion)
        before = [r.asDict() for r in stored.collect()] if stored is not None else None
    reasons, metrics = decide_effects(rows, before or None, config.gate)
    if config.backtest.origins > 0:
        from lakehouse.ml.backtest_flow import backtest_version

        calibration = backtest_version(spark, settings, config, version, False, progress)
        more_reasons, more_metrics = decide_backtest(calibration, config.gate)
        reasons, metrics = reasons + more_reasons, metrics | more_metrics
    gate = promotion.record_effects(name, version, reasons, metrics)
    compared = f"against version {champion}'s effects" if before else "(no champion effects to compare with)"
    progress(f"effects gate {compared}: {'passed' if not reasons else 'failed: ' + '; '.join(reasons)}")
    return gate


def _promote(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, rows: list[dict], progress: Progress
) -> int:
    """`--promote`: complete the version's gate with the effects and promote it if all of it passed."""
    name = config.registry.model_name
    state = version.tags.get("gate.effects")
    if state is None:
        raise DataError(
            f"version {version.version} has no gate verdict to complete (trained before the two-part gate): "
            f"see `lakehouse models show {version.version}`, promote by hand with `lakehouse models promote`"
        )
    if registry.alias_version(name, registry.CHAMPION) == str(version.version):
        progress(f"version {version.version} is @champion already")
        return 0
    if state == promotion.NOT_REQUIRED:
        gate = promotion.recorded(version)
    else:
        gate = gate_effects(spark, settings, config, version, rows, progress)
    if not gate.passed:
        print(f"version {version.version} not promoted: {gate.summary()}")
        return 0
    promotion.promote_gated(spark, settings, name, str(version.version), gate, version.run_id)
    progress(f"promoted version {version.version} to @champion")
    return 0


def _log_to_run(run_id: str, rows: list[dict[str, Any]]) -> None:
    """The effects as a table, the own-price elasticities as metrics and a coefficient plot, on the model's run
    (the active one when `lakehouse train` estimates them within its run)."""
    from contextlib import nullcontext

    import mlflow
    import pandas as pd

    active = mlflow.active_run()
    with nullcontext() if active is not None and active.info.run_id == run_id else mlflow.start_run(run_id=run_id):
        mlflow.log_table(pd.DataFrame(rows), "effects/effects.json")
        metrics = {
            f"effect_{r['method']}_own_price_{effects_report.metric_name(r['brand'])}": r["estimate"]
            for r in rows
            if r["effect"] == "own_price" and r["segment"] == effects_report.ALL and r["estimate"] is not None
        }
        mlflow.log_metrics(metrics)
        effects_report.log_plot(rows)


def _estimate_with_backtest(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The version's effects; with --promote, its back-test (the gate reads it) estimated beside them.

    Both read the same gold_features version and write their own tables; run at once, one's small Spark
    jobs fill the cores while the other waits (the gate then finds the back-test stored).
    """
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.ml.backtest_flow import backtest_version

    with ThreadPoolExecutor(max_workers=1) as pool:
        backtest = None
        if args.promote and config.backtest.origins > 0:
            backtest = pool.submit(backtest_version, spark, settings, config, version, False, Progress("backtest"))
        rows = estimate_version(spark, settings, config, version, args.force, Progress("effects"))
        if backtest is not None:
            backtest.result()
    return rows


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    if args.show:
        rows = delta_log.model_version_records(
            GOLD_EFFECTS, settings, config.registry.model_name, args.model_version, "lakehouse effects"
        )
    else:
        from lakehouse.io.spark import get_spark

        spark = get_spark("lakehouse-effects", settings)
        tracking.configure(settings, config.registry.experiment, dict(os.environ))
        version = registry.trained_version(config.registry.model_name, args.model_version)
        rows = _estimate_with_backtest(spark, settings, config, version, args)
        if args.promote:
            _promote(spark, settings, config, version, rows, Progress("effects"))
    if args.json:
        for row in sorted(rows, key=lambda r: (r["method"], r["brand"], r["segment"], r["effect"])):
            print(json.dumps(row, default=str))
        return 0
    print(effects_report.table(rows))
    if args.show:
        tracking.configure(settings, config.registry.experiment, dict(os.environ))
    metrics = registry.client().get_run(rows[0]["run_id"]).data.metrics if rows else {}
    print(effects_report.forecast_line(metrics))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("effects", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
