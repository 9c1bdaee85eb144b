"""Monitoring a week (`lakehouse monitor`): data health, profiles and Evidently reports against the
champion's reference, the model's quality on the week, and the retraining decision with its request."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import rows_to_df
from lakehouse.errors import DataError
from lakehouse.io import delta_io, tracking
from lakehouse.io.catalog import (
    BRONZE_SALES,
    GOLD_FEATURES,
    GOLD_MONITORING,
    GOLD_SALES_WEEKLY,
    RETRAIN_REQUESTS,
    SILVER_SALES,
)
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.ml import modeling, registry
from lakehouse.ml.evaluation import regression_metrics
from lakehouse.ml.model_inputs import CATEGORICAL_FEATURES, KEYS, LABEL, PROMO_FEATURES
from lakehouse.monitoring.checks import Check
from lakehouse.monitoring.drift import evidently_reports
from lakehouse.monitoring.health import contract_checks, freshness_checks, volume_check
from lakehouse.monitoring.profile import profile, stratified_sample, summary_checks
from lakehouse.monitoring.retraining import Decision, decide, decision_checks, quality_checks, request_id
from lakehouse.policy import MLConfig
from lakehouse.progress import Progress
from lakehouse.settings import Settings
from lakehouse.weeks import monday, utc_now


@dataclass(frozen=True)
class ChampionReference:
    """What the champion was trained on: a Delta version of gold_features and its last weeks."""

    model_name: str
    model_version: str
    run_id: str
    path: str
    version: int
    first: date
    last: date
    numeric: list[str]
    holdout: dict[str, float]

    @property
    def label(self) -> str:
        return f"{GOLD_FEATURES.name}@v{self.version} {self.first}..{self.last}"


def champion_reference(name: str, weeks: int) -> ChampionReference:
    """The champion's training run, read from its lineage tags, params and holdout metrics."""
    version = registry.champion(name)
    run = registry.client().get_run(version.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    try:
        last = date.fromisoformat(params["holdout_last_week"])
        return ChampionReference(
            name,
            str(version.version),
            version.run_id,
            tags[f"lineage.{GOLD_FEATURES.name}.path"],
            int(tags[f"lineage.{GOLD_FEATURES.name}.version"]),
            last - timedelta(weeks=weeks - 1),
            last,
            params["numeric_features"].split(","),
            {"wape": metrics["holdout_wape"], "bias": metrics["holdout_bias"]},
        )
    except KeyError as missing:
        raise DataError(
            f"the champion's run {version.run_id} lacks {missing}: retrain it with `lakehouse train`"
        ) from None


def _latest_week(spark: SparkSession, settings: Settings, table: Any) -> date | None:
    if not delta_io.exists(spark, table, settings):
        return None
    row = delta_io.read(spark, table, settings).agg(F.max("week_start").alias("w")).first()
    return row["w"] if row else None


def _delivered_week(spark: SparkSession, settings: Settings) -> date | None:
    """The latest week of valid sale dates delivered to bronze (dated no later than their ingest)."""
    if not delta_io.exists(spark, BRONZE_SALES, settings):
        return None
    sale_date = F.expr("try_cast(sale_date AS date)")
    valid = F.when(sale_date <= F.to_date("_ingested_at"), sale_date)
    row = delta_io.read(spark, BRONZE_SALES, settings).agg(F.max(valid).alias("d")).first()
    return monday(row["d"]) if row and row["d"] else None


def data_health(spark: SparkSession, settings: Settings, config: MLConfig, week: date) -> list[Check]:
    """Freshness of every layer, and the week's volume in gold_sales_weekly vs the weeks before."""
    cfg = config.monitoring
    delivered = _delivered_week(spark, settings)
    latest = {BRONZE_SALES.name: delivered}
    for table in (SILVER_SALES, GOLD_SALES_WEEKLY, GOLD_FEATURES):
        latest[table.name] = _latest_week(spark, settings, table)
    checks = freshness_checks(latest, delivered, week, cfg.max_lag_weeks)
    if delta_io.exists(spark, GOLD_SALES_WEEKLY, settings):
        weekly = delta_io.read(spark, GOLD_SALES_WEEKLY, settings).filter(
            F.col("week_start").between(week - timedelta(weeks=cfg.volume_trailing_weeks), week)
        )
        counts = {k[0]: n for k, n in delta_io.count_by(weekly, "week_start").items()}
        checks.append(volume_check(counts, week, cfg.volume_trailing_weeks, cfg.volume_warn, cfg.volume_fail))
    return checks


def _to_pandas(sample: DataFrame, columns: list[str]) -> Any:
    """A bounded sample to pandas in key order (the same rows give the same frame); flags as categories."""
    pdf: Any = sample.select(*columns).orderBy(*KEYS).toPandas()
    for c in PROMO_FEATURES:
        if c in pdf:
            pdf[c] = pdf[c].map({True: "yes", False: "no"})
    return pdf


def measure(
    spark: SparkSession, settings: Settings, config: MLConfig, week: date, ref: ChampionReference, progress: Progress
) -> tuple[list[Check], dict[str, Any]]:
    """Everything that compares the week's features with the reference: checks and Evidently snapshots."""
    import mlflow.spark

    cfg = config.monitoring
    contract = load_contract(GOLD_FEATURES.contract, settings.contracts_dir)
    current = delta_io.read(spark, GOLD_FEATURES, settings).filter(F.col("week_start") == F.lit(week))
    reference = (
        spark.read.format("delta")
        .option("versionAsOf", ref.version)
        .load(ref.path)
        .filter(F.col("week_start").between(ref.first, ref.last))
    )
    model = mlflow.spark.load_model(f"models:/{ref.model_name}/{ref.model_version}")
    scored = modeling.predict(model, current).persist(StorageLevel.MEMORY_AND_DISK)
    numeric = [c for c in ref.numeric if c not in cfg.exclude_columns]
    categorical = [c for c in (*CATEGORICAL_FEATURES, *PROMO_FEATURES) if c not in cfg.exclude_columns]
    cur_profile = profile(scored, [*numeric, modeling.PREDICTION], scored.columns, contract)
    if cur_profile.rows == 0:
        scored.unpersist()
        return [], {}
    ref_profile = profile(reference, numeric, reference.columns)
    progress(f"profiled {cur_profile.rows} rows of week {week} and {ref_profile.rows} reference rows ({ref.label})")
    checks = summary_checks(cur_profile, [*numeric, modeling.PREDICTION])
    checks += contract_checks(cur_profile, ref_profile, contract, [*ref.numeric, *CATEGORICAL_FEATURES], cfg)
    checks += quality_checks(regression_metrics(scored, modeling.PREDICTION), ref.holdout, config.retraining)
    columns = list(dict.fromkeys([*KEYS, *numeric, *categorical, LABEL, modeling.PREDICTION]))
    cur_pdf = _to_pandas(stratified_sample(scored, cfg.strata, cfg.sample_rows, "monitor"), columns)
    ref_sample = stratified_sample(reference, cfg.strata, cfg.sample_rows, "monitor")
    ref_pdf = _to_pandas(modeling.predict(model, ref_sample), columns)
    scored.unpersist()
    progress(f"Evidently on {len(cur_pdf)} sampled rows of the week and {len(ref_pdf)} of the reference")
    reports = evidently_reports(ref_pdf, cur_pdf, numeric, categorical, cfg, config.retraining)
    return checks + reports.checks, reports.snapshots


def _frame(
    spark: SparkSession, checks: list[Check], week: date, ref: ChampionReference, inputs: str, run_id: str | None
) -> DataFrame:
    """The week's gold_monitoring rows."""
    fixed = {
        "week_start": week,
        "model_name": ref.model_name,
        "model_version": ref.model_version,
        "reference": ref.label,
        "monitor_run_id": run_id,
        "inputs": inputs,
    }
    return rows_to_df(spark, load_contract(GOLD_MONITORING.contract), [{**fixed, **c.__dict__} for c in checks])


def _columns() -> list[str]:
    """gold_monitoring's column names, in contract order (the order its stored rows are tuples in)."""
    return [c.name for c in load_contract(GOLD_MONITORING.contract).columns]


def _unchanged(
    spark: SparkSession, settings: Settings, checks: list[Check], week: date, ref: ChampionReference, inputs: str
) -> bool:
    """The week is stored and its rows are these (MLflow run ids aside: a re-run that measures the same has
    another run)."""
    df = _frame(spark, checks, week, ref, inputs, None)
    return delta_io.holds(df, GOLD_MONITORING, settings, _week(week), ignore=("monitor_run_id",))


def _week(week: date) -> str:
    return f"week_start = '{week.isoformat()}'"


def _stored(spark: SparkSession, settings: Settings, week: date) -> list[tuple] | None:
    """The week's stored rows in contract order (None when the week was never monitored)."""
    if not delta_io.exists(spark, GOLD_MONITORING, settings):
        return None
    columns = _columns()
    week_df = delta_io.read(spark, GOLD_MONITORING, settings).filter(F.col("week_start") == F.lit(week))
    if not set(columns) <= set(week_df.columns):
        return None  # written under an older contract: measure again
    rows = week_df.select(*columns).collect()
    return [tuple(r) for r in rows] if rows else None


# Rows that are not measured against the reference: data health of the layers and the decision.
NOT_MEASURED = ("freshness", "volume", "retraining")
# The code the measured rows are a function of.
MONITOR_CODE = (
    "lakehouse.monitoring.monitor_flow",
    "lakehouse.monitoring.checks",
    "lakehouse.monitoring.profile",
    "lakehouse.monitoring.health",
    "lakehouse.monitoring.drift",
    "lakehouse.monitoring.retraining",
    "lakehouse.draws",
    "lakehouse.ml.evaluation",
    "lakehouse.ml.modeling",
    "lakehouse.ml.model_inputs",
)


def measure_inputs(
    spark: SparkSession, settings: Settings, config: MLConfig, week: date, ref: ChampionReference
) -> str:
    """Everything `measure` is a function of, as one id: the champion (and so its reference), the week's
    features, contracts, the monitoring and retraining config, and the code."""
    parts = {
        "week": week,
        "model": f"{ref.model_name}/{ref.model_version}/{ref.run_id}",
        "features": delta_io.version(spark, GOLD_FEATURES, settings),
        "contracts": {t.name: load_contract(t.contract).version for t in (GOLD_FEATURES, GOLD_MONITORING)},
        "config": {"monitoring": config.monitoring, "retraining": config.retraining},
        "code": code_id(MONITOR_CODE),
    }
    return inputs_id(parts)


def _measured_before(stored: list[tuple] | None, inputs: str) -> list[Check] | None:
    """The stored measured rows as checks, when all the week's rows were measured from `inputs`."""
    if not stored:
        return None
    rows = [dict(zip(_columns(), r, strict=True)) for r in stored]
    if any(r["inputs"] != inputs for r in rows):
        return None
    fields = ("check_name", "metric", "column_name", "value", "threshold", "status")
    return [Check(*(r[f] for f in fields)) for r in rows if r["check_name"] not in NOT_MEASURED]


def _earlier_requests(spark: SparkSession, settings: Settings, name: str) -> list[tuple[date, list[str]]]:
    if not delta_io.exists(spark, RETRAIN_REQUESTS, settings):
        return []
    requests = delta_io.read(spark, RETRAIN_REQUESTS, settings).filter(F.col("model_name") == name)
    return [(r.week_start, list(r.causes)) for r in requests.select("week_start", "causes").collect()]


def record_request(
    spark: SparkSession, settings: Settings, ref: ChampionReference, week: date, decision: Decision, run_id: str | None
) -> tuple[str, bool]:
    """Append the week's request unless one is recorded already; returns (request id, newly recorded)."""
    rid = request_id(ref.model_name, week)
    if delta_io.exists(spark, RETRAIN_REQUESTS, settings):
        if delta_io.read(spark, RETRAIN_REQUESTS, settings).filter(F.col("request_id") == rid).limit(1).count():
            return rid, False
    reason = f"week {week}: {', '.join(decision.requested)} (champion {ref.model_name} v{ref.model_version})"
    values = {
        "request_id": rid,
        "requested_at": utc_now(),
        "week_start": week,
        "model_name": ref.model_name,
        "model_version": ref.model_version,
        "causes": list(decision.requested),
        "reason": reason,
        "evidence": json.dumps(decision.evidence, sort_keys=True, default=str),
        "actor": registry.actor(),
        "monitor_run_id": run_id,
    }
    contract = load_contract(RETRAIN_REQUESTS.contract, settings.contracts_dir)
    df = rows_to_df(spark, contract, [values])
    delta_io.append_once(df, RETRAIN_REQUESTS, settings, f"retrain-{rid}")
    return rid, True


def _publish(
    settings: Settings,
    config: MLConfig,
    week: date,
    ref: ChampionReference,
    checks: list[Check],
    snapshots: dict[str, Any],
) -> str:
    """HTML reports under reports/<week>/ and a monitoring run in MLflow holding them and the headline figures."""
    import mlflow

    folder = settings.reports_dir / week.isoformat()
    tracking.configure(settings, config.monitoring.experiment)
    tags = {
        "monitor.week": week.isoformat(),
        "model_name": ref.model_name,
        "model_version": ref.model_version,
        "reference": ref.label,
    }
    with mlflow.start_run(run_name=f"monitor-{week}", tags=tags) as run:
        for name, snapshot in snapshots.items():
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.html"
            snapshot.save_html(str(path))  # a str: given a Path, Evidently 0.7 silently writes nothing
            mlflow.log_artifact(str(path), "evidently")
        headline = {
            f"{c.check_name}.{c.metric}".replace(":", "_"): c.value
            for c in checks
            if c.column_name is None and c.value is not None
        }
        mlflow.log_metrics(headline)
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "checks.json"
            table.write_text(json.dumps([c.__dict__ for c in checks], indent=1, default=str))
            mlflow.log_artifact(str(table))
    return run.info.run_id


def _assess(
    health: list[Check], measured: list[Check], earlier: list, week: date, config: MLConfig
) -> tuple[list[Check], Decision]:
    """The week's checks and the decision they lead to."""
    checks = health + measured
    decision = decide(checks, earlier, week, config.retraining)
    return checks + decision_checks(decision), decision


def monitor_week(
    spark: SparkSession, settings: Settings, config: MLConfig, week: date, progress: Progress
) -> tuple[Decision, str | None]:
    """Measure, decide, write the week (unless it is unchanged) and record a request; (decision, request id).

    Data health and the decision are always recomputed; the measured rows (Evidently, drift, quality) are
    reused when the week was measured from the same inputs (`measure_inputs`) and nothing else changed.
    """
    ref = champion_reference(config.registry.model_name, config.monitoring.reference_weeks)
    progress(f"monitoring week {week} against {ref.model_name} v{ref.model_version} (@champion), reference {ref.label}")
    inputs = measure_inputs(spark, settings, config, week, ref)
    health = data_health(spark, settings, config, week)
    earlier = _earlier_requests(spark, settings, ref.model_name)
    stored = _stored(spark, settings, week)
    reused = _measured_before(stored, inputs)
    if reused is not None:
        checks, decision = _assess(health, reused, earlier, week, config)
        if _unchanged(spark, settings, checks, week, ref, inputs):
            progress(f"kept week {week} in {GOLD_MONITORING.name}: measured from the same inputs (id {inputs})")
            return _request_and_decision(spark, settings, ref, week, decision, None, progress)
    measured, snapshots = measure(spark, settings, config, week, ref, progress)
    if not measured:
        progress(f"week {week} is not in {GOLD_FEATURES.name}: nothing to compare, data health only")
    checks, decision = _assess(health, measured, earlier, week, config)
    # Written even when the rows come out as stored: they carry the new inputs id (or new health rows), so the
    # next run finds the week measured from its inputs. Nothing here reads a local file: on Kubernetes the
    # next run is another driver pod, and the reports live in the run's MLflow artifacts.
    run_id = _publish(settings, config, week, ref, checks, snapshots)
    delta_io.replace_where(_frame(spark, checks, week, ref, inputs, run_id), GOLD_MONITORING, settings, _week(week))
    reports = [settings.reports_dir / week.isoformat() / f"{n}.html" for n in snapshots]
    where = f" and {len(reports)} reports in {reports[0].parent}" if reports else ""
    progress(f"wrote {len(checks)} rows for week {week} to {GOLD_MONITORING.name}{where} (MLflow run {run_id})")
    return _request_and_decision(spark, settings, ref, week, decision, run_id, progress)


def _request_and_decision(
    spark: SparkSession,
    settings: Settings,
    ref: ChampionReference,
    week: date,
    decision: Decision,
    run_id: str | None,
    progress: Progress,
) -> tuple[Decision, str | None]:
    """Record the week's retraining request (once) and write decision.json; (decision, request id)."""
    rid = None
    if decision.retrain:
        rid, new = record_request(spark, settings, ref, week, decision, run_id)
        progress(f"{'recorded' if new else 'already recorded'}: retraining request {rid} in {RETRAIN_REQUESTS.name}")
    write_decision(settings, week, decision, rid)
    return decision, rid


def write_decision(settings: Settings, week: date, decision: Decision, rid: str | None) -> Path:
    """The decision beside the week's reports, for a person (a scheduler reads the tables instead:
    lakehouse.monitoring.decisions)."""
    path = settings.reports_dir / week.isoformat() / "decision.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "week": week.isoformat(),
        "retrain": decision.retrain,
        "request_id": rid,
        "causes": list(decision.causes),
        "blocked_by": list(decision.blocked_by),
        "summary": decision.summary(),
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def retrain(spark: SparkSession, settings: Settings, config: MLConfig, rid: str) -> int:
    """Train through the normal gate, with the request on the run's tags."""
    from lakehouse.ml.train_flow import train

    tracking.configure(settings, config.registry.experiment)
    return train(spark, settings, config, None, promote=True, force=False, tags={"retrain.request_id": rid})
