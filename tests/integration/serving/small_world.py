"""A small served world without Spark: contract-shaped Delta tables written with delta-rs, a real MLflow registry.

Outlets `outlet-1..4` (two channels) x products P1..P3 (brands B1, B2, B1); each row's net lift is distinct, so
the ranking is known. `write_week` appends a scored week as `lakehouse score` would (its own partition);
`write_monitoring` the weeks `lakehouse monitor` would have measured, with their reports.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.contracts.arrow import contract_schema
from lakehouse.io.catalog import (
    GOLD_EFFECTS,
    GOLD_LIFT,
    GOLD_MONITORING,
    GOLD_RECOMMENDATIONS,
    RETRAIN_REQUESTS,
    SILVER_OUTLETS,
    Table,
)
from lakehouse.settings import Settings

OUTLETS = {"outlet-1": "retail", "outlet-2": "retail", "outlet-3": "digital", "outlet-4": "foodservice"}
PRODUCTS = {"P1": "B1", "P2": "B2", "P3": "B1"}
MODEL = "transaction_drivers"


def write(table: Table, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append `rows` to `table`, shaped by its contract (columns a row lacks are null)."""
    schema = contract_schema(table.contract, settings.contracts_dir)
    write_deltalake(
        table.path(settings), pa.Table.from_pylist(rows, schema), mode="append", partition_by=list(table.partition_by)
    )


def net_lift(outlet: str, product: str, week: date) -> float:
    """Distinct per row and week: the ranking of every week is known."""
    return 10.0 * int(outlet[-1]) + int(product[-1]) + week.toordinal() % 7 / 10


def write_week(settings: Settings, week: date, model_version: str, outlets: dict[str, str] = OUTLETS) -> None:
    rows = []
    for outlet in outlets:
        for product, brand in PRODUCTS.items():
            lift = net_lift(outlet, product, week)
            rows.append(
                {
                    "outlet_id": outlet,
                    "product_id": product,
                    "week_start": week,
                    "brand": brand,
                    "experiment": "e",
                    "in_holdout": False,
                    "intended_action": "deal",
                    "action": "deal",
                    "price_change": -0.05,
                    "reason": "largest net lift",
                    "planned_unit_price": 2.0,
                    "unit_price": 1.9,
                    "planned_units": 100.0,
                    "predicted_units": 100.0 + lift,
                    "lift_units": lift,
                    "net_lift_units": lift,
                    "net_lift_units_low": lift - 2.0,
                    "net_lift_units_high": lift + 2.0,
                    "explanation": f"a deal on {product} of {brand}",
                    "margin_basis": "unit cost",
                    "effects_version": model_version,
                    "candidates": [],
                    "model_name": MODEL,
                    "model_version": model_version,
                    "model_run_id": "run",
                    "features_version": 1,
                }
            )
    write(GOLD_RECOMMENDATIONS, settings, rows)


def write_world(settings: Settings, week: date) -> None:
    """Outlets, one scored week, effects of model versions 1 and 2, and the lift of the week before."""
    now = datetime.now(UTC)
    write(
        SILVER_OUTLETS,
        settings,
        [
            {"outlet_id": o, "channel": c, "region": "north", "_batch_id": "b", "_ingested_at": now}
            for o, c in OUTLETS.items()
        ],
    )
    write_week(settings, week, "1")
    effects = [
        {
            "model_name": MODEL,
            "model_version": version,
            "method": "dml",
            "brand": brand,
            "segment": "ALL",
            "effect": "deal",
            "run_id": "run",
            "features_version": 1,
            "estimate": float(version) / 10,
            "confidence": 0.95,
            "rows": 500,
            "status": "estimated",
            "identified_by": "deal weeks within outlet x product",
            "inputs": "i",
        }
        for version in ("1", "2")
        for brand in ("B1", "B2")
    ]
    write(GOLD_EFFECTS, settings, effects)
    lift = {"experiment": "e", "method": "cuped", "treated_outlets": 3, "holdout_outlets": 1, "treated_mean": 5.0}
    lift |= {"holdout_mean": 4.0, "theta": 0.5, "lift_units": 1.0, "confidence": 0.95, "pre_weeks": 8}
    before = date.fromordinal(week.toordinal() - 7)
    write(
        GOLD_LIFT, settings, [{**lift, "week_start": before, "brand": b, "model_version": "1"} for b in ("ALL", "B1")]
    )


def register_versions(settings: Settings, root: Path, count: int) -> Any:
    """`count` versions of the model in the home's registry (SQLite), each from a run of its own; no alias yet."""
    from mlflow import MlflowClient

    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    experiment = client.create_experiment("serving-test", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model(MODEL)
    for _ in range(count):
        run = client.create_run(experiment)
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return client


# The monitored weeks: (drift share, WAPE, bias, freshness lag of gold_features, retraining requested).
DRIFT_LIMIT, BIAS_LIMIT, MAX_LAG = 0.3, 0.15, 0.0
REPORTS = ("data_drift.html", "prediction_drift.html", "quality.html")


def monitoring_rows(
    week: date, drift: float, wape: float, bias: float, lag: float, retrain: bool, run_id: str
) -> list[dict]:
    """A week's rows as `lakehouse monitor` writes them: whole-week figures, per-column ones, the decision."""

    def status(value: float, limit: float) -> str:
        return "fail" if value > limit else "ok"

    wape_limit = 0.2 * 1.25
    rows = [
        ("data_drift", "drift_share", None, drift, DRIFT_LIMIT, status(drift, DRIFT_LIMIT)),
        ("data_drift", "wasserstein", "unit_price", 0.5, 0.1, "warn"),  # a column's drift: in the reports only
        ("quality", "wape", None, wape, wape_limit, status(wape, wape_limit)),
        ("quality", "bias", None, bias, BIAS_LIMIT, status(abs(bias), BIAS_LIMIT)),
        ("freshness", "lag_weeks", "gold_features", lag, MAX_LAG, status(lag, MAX_LAG)),
        ("volume", "relative_change", None, 0.01, 0.5, "ok"),
        ("retraining", "requested", None, float(retrain), None, "warn" if retrain else "ok"),
        ("retraining", "blocked", None, 0.0, None, "ok"),
    ]
    return [
        {
            "week_start": week,
            "check_name": check,
            "metric": metric,
            "column_name": column,
            "value": value,
            "threshold": limit,
            "status": graded,
            "model_name": MODEL,
            "model_version": "1",
            "reference": "gold_features@3 weeks 2024-01-01..2024-02-19",
            "monitor_run_id": run_id,
        }
        for check, metric, column, value, limit, graded in rows
    ]


def write_monitoring(
    settings: Settings, weeks: dict[date, tuple[float, float, float, float, bool]], runs: dict[date, str]
) -> None:
    """gold_monitoring rows of `weeks`, a retraining request for those that ask, and each week's HTML reports:
    in the home's reports folder, or only on the MLflow run `runs` names for the week (as on Kubernetes)."""
    rows = [row for week, figures in weeks.items() for row in monitoring_rows(week, *figures, runs.get(week, "run"))]
    write(GOLD_MONITORING, settings, rows)
    requests = [
        {
            "request_id": f"req-{week}",
            "requested_at": datetime.now(UTC),
            "week_start": week,
            "model_name": MODEL,
            "model_version": "1",
            "causes": ["data_drift"],
            "reason": "drift share above its threshold",
            "evidence": "{}",
            "actor": "test",
        }
        for week, (*_, retrain) in weeks.items()
        if retrain
    ]
    write(RETRAIN_REQUESTS, settings, requests)
    for week in weeks:
        if week not in runs:
            write_reports(settings.reports_dir / week.isoformat(), week)


def write_reports(folder: Path, week: date) -> None:
    """The week's reports as `lakehouse monitor` saves them (small stand-ins for Evidently's HTML), and its decision."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in REPORTS:
        folder.joinpath(name).write_text(f"<html><body><h1>{name} of {week}</h1></body></html>")
    folder.joinpath("decision.json").write_text("{}")


def log_reports_run(client: Any, root: Path, week: date) -> str:
    """A monitoring run holding the week's reports under `evidently/`, as `lakehouse monitor` logs them; its id."""
    experiment = client.create_experiment(f"monitoring-{week}", artifact_location=(root / "monitoring").as_uri())
    run_id = client.create_run(experiment).info.run_id
    folder = root / "run-reports" / week.isoformat()
    write_reports(folder, week)
    for name in REPORTS:
        client.log_artifact(run_id, str(folder / name), "evidently")
    return run_id


def write_lift_weeks(settings: Settings, weeks: list[date]) -> None:
    """Measured lift of `weeks` (brand ALL), with intervals and the promised lift beside it."""
    rows = []
    for i, week in enumerate(weeks):
        measured, promised = 1.0 + i, 1.5 + i
        rows.append(
            {
                "week_start": week,
                "experiment": "e",
                "brand": "ALL",
                "method": "cuped",
                "treated_outlets": 3,
                "holdout_outlets": 1,
                "treated_mean": 5.0,
                "holdout_mean": 4.0,
                "theta": 0.5,
                "lift_units": measured,
                "ci_low": measured - 0.8,
                "ci_high": measured + 0.8,
                "predicted_lift_units": promised,
                "predicted_low": promised - 0.5,
                "predicted_high": promised + 0.5,
                "promise_kept": True,
                "confidence": 0.95,
                "pre_weeks": 8,
                "model_version": "1",
            }
        )
    write(GOLD_LIFT, settings, rows)
