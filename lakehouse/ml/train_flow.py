"""Training a model version (`lakehouse train`): read gold_features at a Delta version, fit and evaluate
the pipeline, log it to MLflow with its lineage, register it, run the forecast half of the gate and,
when the gate passes, promote it; `reproduce` refits a logged run from what it recorded."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from lakehouse.contracts.model import load_contract
from lakehouse.errors import DataError
from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_FEATURES
from lakehouse.io.lineage import git_commit, inputs_id, lineage_tags
from lakehouse.ml import modeling, promotion, registry, run_log
from lakehouse.ml.evaluation import error_breakdown, regression_metrics
from lakehouse.ml.gate import Evidence, GateResult, decide_forecast, decide_parity
from lakehouse.ml.model_inputs import model_input_columns
from lakehouse.ml.training import BASELINES, TrainResult, cv_summary, train_and_evaluate
from lakehouse.policy import MLConfig, from_dict
from lakehouse.progress import Progress
from lakehouse.settings import Settings


def _log_result(result: TrainResult, config: MLConfig, progress: Progress) -> None:
    import mlflow

    mlflow.log_params(run_log.flat_params(config.as_dict()))
    mlflow.log_params(
        {
            "train_first_week": str(result.train_weeks[0]),
            "train_last_week": str(result.train_weeks[1]),
            "holdout_first_week": str(result.holdout.test_from),
            "holdout_last_week": str(result.holdout.test_to),
            "numeric_features": ",".join(result.numeric),
        }
    )
    metrics = {f"holdout_{k}": v for k, v in result.holdout_metrics.items()}
    for name, m in result.baseline_metrics.items():
        metrics |= {f"baseline_{name}_{k}": v for k, v in m.items() if k in ("wape", "bias", "rmse_log")}
    for fold, m in result.cv_metrics.items():
        metrics |= {f"{fold}_{k}": v for k, v in m.items() if k in ("wape", "bias", "rmse_log")}
    metrics |= cv_summary(result.cv_metrics)
    metrics |= {f"effect_{k}": v for k, v in result.effects.items()}
    metrics |= {f"baseline_elasticity_coef_{k}": v for k, v in result.elasticity_coefficients.items()}
    mlflow.log_metrics(metrics)
    mlflow.set_tag("beats_baselines", str(result.beats_baselines).lower())
    mlflow.log_dict(config.as_dict(), "config.json")
    mlflow.log_dict(result.importance, "feature_importance.json")
    for by in ("brand", "promo_state", "outlet_id"):
        table = error_breakdown(result.holdout_predictions, by, modeling.PREDICTION)
        if by == "outlet_id":  # bounded: the outlets with the most units in error
            table = table.orderBy((table["wape"] * table["actual_units"]).desc()).limit(500)
        mlflow.log_table(table.toPandas(), f"errors/by_{by}.json")
    rows = max(result.holdout_metrics["rows"], 1.0)
    sample = result.holdout_predictions.sample(fraction=min(1.0, 5000 / rows), seed=7).limit(5000)
    run_log.log_plots(result.importance, sample.select("units", modeling.PREDICTION).toPandas())
    progress(f"logged metrics; effects {json.dumps({k: round(v, 3) for k, v in result.effects.items()})}")


def _log_model(result: TrainResult, config: MLConfig) -> str:
    import mlflow.spark
    from mlflow.models import infer_signature

    columns = model_input_columns(result.numeric)
    example = result.holdout_predictions.select(*columns).limit(5).toPandas()
    output: Any = result.holdout_predictions.select(modeling.PREDICTION).limit(5).toPandas()
    signature = infer_signature(example, output.rename(columns={modeling.PREDICTION: modeling.MODEL_OUTPUT}))
    info = mlflow.spark.log_model(
        result.model,
        "model",
        signature=signature,
        input_example=example,
        pip_requirements=run_log.pip_requirements(config.training.estimator),
    )
    return str(info.model_uri)


def _log_serving_flavour(result: TrainResult, config: MLConfig, progress: Progress) -> Any | None:
    """Log the serving flavour beside the Spark model and load it back, as the service will (None: the pipeline
    has a stage the flavour cannot run, e.g. MLlib's GBT; the run's `serving.flavour` tag says why)."""
    import mlflow

    from lakehouse.ml import serving_flavour
    from lakehouse.ml.serving_model import UnsupportedStage

    try:
        uri = serving_flavour.log_serving_flavour(result.model, run_log.pip_requirements(config.training.estimator))
    except UnsupportedStage as exc:
        mlflow.set_tag("serving.flavour", f"none: {exc}")
        progress(f"no serving flavour: {exc}")
        return None
    mlflow.set_tag("serving.flavour", "pyfunc")
    return serving_flavour.load_serving_flavour(uri)


def parity_metrics(result: TrainResult, serving: Any | None) -> dict[str, float]:
    """A sample of the holdout scored by the serving flavour against the Spark model's predictions of it
    (empty without a serving flavour)."""
    if serving is None:
        return {}
    from lakehouse.ml import serving_flavour

    rows = max(result.holdout_metrics["rows"], 1.0)
    sample: Any = (
        result.holdout_predictions.select(*model_input_columns(result.numeric), modeling.PREDICTION)
        .sample(fraction=min(1.0, 2 * serving_flavour.PARITY_ROWS / rows), seed=11)
        .limit(serving_flavour.PARITY_ROWS)
        .toPandas()
    )
    spark_predictions = sample.pop(modeling.PREDICTION)
    return serving_flavour.parity(sample, spark_predictions, serving)


def _evidence(predictions: DataFrame, column: str, segment: str) -> Evidence:
    m = regression_metrics(predictions, column)
    rows = error_breakdown(predictions, segment, column).select(segment, "wape").collect()
    return Evidence(m["wape"], m["bias"], m["invalid_predictions"], {str(r[segment]): r["wape"] for r in rows})


def run_gate(result: TrainResult, config: MLConfig, serving: Any | None = None) -> GateResult:
    """Challenger vs @champion (loaded now, scored on the same holdout rows) and the baselines, and the
    challenger's serving flavour against its Spark model (`parity_metrics`)."""
    import mlflow.spark

    segment = config.gate.segment_column
    challenger = _evidence(result.holdout_predictions, modeling.PREDICTION, segment)
    baselines = {n: result.baseline_metrics[n]["wape"] for n in BASELINES}
    base_evidence = [_evidence(result.holdout_predictions, f"pred_{n}", segment) for n in BASELINES]
    best_segments = {s: min(e.segments.get(s, float("inf")) for e in base_evidence) for s in challenger.segments}
    champion = None
    champion_version = registry.alias_version(config.registry.model_name, registry.CHAMPION)
    if champion_version is not None:
        model = mlflow.spark.load_model(f"models:/{config.registry.model_name}@{registry.CHAMPION}")
        holdout_rows = result.holdout_predictions.drop(modeling.PREDICTION)
        champion = _evidence(modeling.predict(model, holdout_rows), modeling.PREDICTION, segment)
    outcome = decide_forecast(challenger, champion, baselines, best_segments, config.gate)
    parity = parity_metrics(result, serving)
    reasons = (*outcome.reasons, *decide_parity(parity))
    metrics = {
        **outcome.metrics,
        **parity,
        "champion_version": champion_version,
        "holdout_rows": result.holdout_metrics["rows"],
    }
    return GateResult(not reasons, reasons, metrics)


def _register(spark: SparkSession, settings: Settings, config: MLConfig, model_uri: str, run_id: str) -> str:
    import mlflow

    name = config.registry.model_name
    previous = registry.alias_version(name, registry.CHALLENGER)
    version = str(mlflow.register_model(model_uri, name).version)
    event = registry.Event(name, registry.CHALLENGER, "register", previous, version, "trained", run_id=run_id)
    registry.move_alias(spark, settings, event)
    return version


def _already_trained(key: str) -> str | None:
    """The finished run with this training key, if any (the same data version, config and code)."""
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.train_key = '{key}' and attributes.status = 'FINISHED'", output_format="list"
    )
    return runs[0].info.run_id if runs else None


def train(
    spark: SparkSession,
    settings: Settings,
    config: MLConfig,
    features_version: int | None,
    promote: bool,
    force: bool = True,
    tags: dict[str, str] | None = None,
) -> int:
    """Train, log, register and gate; with force=False, a run already made from the same inputs is reused.

    `tags` go on the run too (e.g. the retraining request that asked for it).
    """
    progress = Progress("train")
    version = features_version if features_version is not None else delta_io.version(spark, GOLD_FEATURES, settings)
    features_df = delta_io.read(spark, GOLD_FEATURES, settings, version)
    contract = load_contract(GOLD_FEATURES.contract, settings.contracts_dir)
    lineage = lineage_tags(
        {GOLD_FEATURES.name: (GOLD_FEATURES.path(settings), version)},
        {contract.name: contract.version},
        spark.sparkContext.master,
    )
    # Keyed on content, not the Delta version: a rebuild that changed nothing must not retrain.
    lineage[f"lineage.{GOLD_FEATURES.name}.fingerprint"] = delta_io.fingerprint(features_df)
    key_parts = {k: v for k, v in lineage.items() if not k.endswith(".version") or k.startswith("contract.")}
    lineage["train_key"] = inputs_id({"lineage": key_parts, "config": config.as_dict()})
    done = None if force else _already_trained(lineage["train_key"])
    if done is not None:
        print(
            f"already trained on {GOLD_FEATURES.name} version {version} with this config and code: run {done} "
            "(use --force to train again)"
        )
        return 0
    progress(f"training {config.training.estimator} on {GOLD_FEATURES.name} version {version}")
    features_df = features_df.cache()  # every fold's fit, its metrics and the holdout read it
    try:
        return _train_run(spark, settings, config, features_df, lineage, tags, promote, progress)
    finally:
        features_df.unpersist()


def _train_run(
    spark: SparkSession,
    settings: Settings,
    config: MLConfig,
    features_df: DataFrame,
    lineage: dict[str, str],
    tags: dict[str, str] | None,
    promote: bool,
    progress: Progress,
) -> int:
    """The MLflow run of `train`: fit and evaluate, log, register, gate and (when asked) promote."""
    import mlflow

    with mlflow.start_run(run_name=f"train-{config.training.estimator}", tags={**lineage, **(tags or {})}) as run:
        result = train_and_evaluate(features_df, config.training, progress)
        _log_result(result, config, progress)
        if not result.beats_baselines:
            print(
                "WARNING: the model does NOT beat every baseline on the holdout: "
                + ", ".join(f"{n} wape={m['wape']:.4f}" for n, m in result.baseline_metrics.items())
                + f" vs model wape={result.holdout_metrics['wape']:.4f}",
                flush=True,
            )
        model_uri = _log_model(result, config)
        serving = _log_serving_flavour(result, config, progress)
        model_version = _register(spark, settings, config, model_uri, run.info.run_id)
        forecast = run_gate(result, config, serving)
        mlflow.log_metrics(
            {k: float(v) for k, v in forecast.metrics.items() if k.startswith("parity_") and v is not None}
        )
        mlflow.log_dict({"passed": forecast.passed, "reasons": list(forecast.reasons), **forecast.metrics}, "gate.json")
        name, required = config.registry.model_name, config.gate.effects_required
        gate = promotion.record_forecast(name, model_version, forecast, required)
        progress(f"registered {name} version {model_version} as @challenger; forecast gate {forecast.summary()}")
        if promote and forecast.passed and required:  # the effects half, in this process and run
            from lakehouse.ml.effects_flow import estimate_and_gate

            gate = estimate_and_gate(
                spark, settings, config, registry.client().get_model_version(name, model_version), progress
            )
        if promote and gate.passed:
            promotion.promote_gated(spark, settings, name, model_version, gate, run.info.run_id)
            progress(f"promoted version {model_version} to @champion")
        elif promote and forecast.passed:
            progress(f"version {model_version} stays @challenger: gate {gate.summary()}")
    # The run ends FINISHED only after registration, the whole gate and promotion: a failure there leaves
    # it FAILED, so the next `train` does not reuse it.
    print(f"run {run.info.run_id}: version {model_version}, holdout wape {result.holdout_metrics['wape']:.4f}")
    return 0


def reproduce(spark: SparkSession, settings: Settings, run_id: str, tolerance: float | None) -> int:
    """Retrain with the run's config on the run's Delta version; exit 1 if metrics differ beyond tolerance."""
    import mlflow

    original = registry.client().get_run(run_id)
    config = from_dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json"))
    path = original.data.tags[f"lineage.{GOLD_FEATURES.name}.path"]
    version = int(original.data.tags[f"lineage.{GOLD_FEATURES.name}.version"])
    features_df = spark.read.format("delta").option("versionAsOf", version).load(path)
    tol = tolerance if tolerance is not None else config.training.reproduce_tolerance
    # Only the inputs' lineage is copied: commit and master are today's, and no train_key (nothing to reuse).
    lineage = {k: v for k, v in original.data.tags.items() if k.startswith(("lineage.", "contract."))}
    tags = {
        **lineage,
        "reproduces": run_id,
        "git_commit": git_commit(),
        "spark_master": spark.sparkContext.master,
    }
    if tags["git_commit"] != original.data.tags.get("git_commit"):
        print(f"note: code is at {tags['git_commit']}, the run was made at {original.data.tags.get('git_commit')}")
    with mlflow.start_run(run_name=f"reproduce-{run_id[:8]}", tags=tags):
        result = train_and_evaluate(features_df, config.training, Progress("reproduce"))
        mlflow.log_metrics({f"holdout_{k}": v for k, v in result.holdout_metrics.items()})
    failures = []
    for key in ("wape", "rmse_log", "bias"):
        before, after = original.data.metrics[f"holdout_{key}"], result.holdout_metrics[key]
        scale = max(abs(before), 1.0) if key == "bias" else abs(before)
        ok = abs(after - before) <= tol * scale
        print(f"holdout_{key}: run {before:.6f} reproduced {after:.6f} {'ok' if ok else 'DIFFERENT'}")
        failures += [] if ok else [key]
    if failures:
        raise DataError(f"run {run_id} not reproduced within {tol:.1%}: {', '.join(failures)}")
    print(f"reproduced run {run_id} on {path} version {version} within {tol:.1%}")
    return 0
