"""Causal effects of a model version: estimated (or found stored) into gold_effects, logged to its run,
then the effects half of its gate and, when asked, its promotion (`lakehouse effects`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.errors import DataError
from lakehouse.io.catalog import GOLD_EFFECTS, GOLD_FEATURES
from lakehouse.ml import effects_report, promotion, registry
from lakehouse.ml.gate import GateResult, decide_backtest, decide_effects
from lakehouse.policy import MLConfig
from lakehouse.progress import Progress
from lakehouse.settings import Settings

# Spark is imported where it is used: `--show` reads the table with delta-rs and starts no JVM.
if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EFFECTS_CODE = ("lakehouse.ml.effects_flow", "lakehouse.ml.effects", "lakehouse.ml.panel", "lakehouse.ml.linear")


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
        return effects.estimate(features_df, effects.Settings.of(config.effects), effects.learner(config.effects))

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


def promote_if_passed(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, rows: list[dict], progress: Progress
) -> int:
    """`effects --promote`: complete the version's gate with the effects; promote it if all of it passed."""
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


def estimate_with_backtest(
    spark: SparkSession, settings: Settings, config: MLConfig, version: Any, force: bool, promote: bool
) -> list[dict[str, Any]]:
    """The version's effects; when it is to be promoted, its back-test (the gate reads it) estimated beside them.

    Both read the same gold_features version and write their own tables; run at once, one's small Spark
    jobs fill the cores while the other waits (the gate then finds the back-test stored).
    """
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.ml.backtest_flow import backtest_version

    with ThreadPoolExecutor(max_workers=1) as pool:
        backtest = None
        if promote and config.backtest.origins > 0:
            backtest = pool.submit(backtest_version, spark, settings, config, version, False, Progress("backtest"))
        rows = estimate_version(spark, settings, config, version, force, Progress("effects"))
        if backtest is not None:
            backtest.result()
    return rows
