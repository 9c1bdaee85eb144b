"""Monitoring end to end: drift injected into synthetic data, data health, and the retraining requests.

One warehouse for the module. 120 outlets x 6 products are built for weeks 0..33 and a champion is
trained on them; weeks 34..35 come from the same process. From week 36 on prices are 30% higher and a
new cluster of 24 richer outlets in a new region opens. The scenario runs once, in the fixture, in the
order a team would live it; each test then checks one step of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from jobs import monitor, sample_data
from lakehouse.errors import DataError
from lakehouse.io import delta_io, tracking
from lakehouse.io.catalog import GOLD_MONITORING, RETRAIN_REQUESTS
from lakehouse.ml import registry
from lakehouse.ml.train_flow import train
from lakehouse.monitoring import monitor_flow
from lakehouse.monitoring.checks import DATA_DRIFT, QUALITY
from lakehouse.monitoring.decisions import stored_decision
from lakehouse.policy import from_dict
from lakehouse.progress import Progress
from tests.integration.helpers import build, fresh_home, ingest, table

pytestmark = pytest.mark.world  # a module-sized world built first: `make test` runs it, `make test-fast` not

START, WEEKS, OUTLETS, PRODUCTS, DRIFT_WEEK, NEW_OUTLETS = date(2023, 1, 2), 38, 120, 6, 36, 24
CONFIG = {
    "training": {"cv_folds": 1, "params": {"xgboost": {"n_estimators": 60}}},
    "monitoring": {"sample_rows": 2000},
    "gate": {"effects_required": False},  # promotion on the forecast half alone (test_effects has the rest)
}
NAME = "transaction_drivers"


def week(i: int) -> date:
    return START + timedelta(weeks=i)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory) -> Iterator[dict[str, Any]]:
    steps: dict[str, Any] = {}
    with fresh_home(tmp_path_factory, "monitor", CONFIG) as (root, settings, _):
        config = from_dict(CONFIG)
        raw = root / "raw"
        shape = ["--outlets", str(OUTLETS), "--products", str(PRODUCTS), "--weeks", str(WEEKS)]
        drift = ["--drift-from-week", str(DRIFT_WEEK), "--price-factor", "1.3", "--new-outlets", str(NEW_OUTLETS)]
        assert sample_data.main(["synthetic", "--out", str(raw), *shape, "--start", str(START), *drift]) == 0
        deliveries = {i: raw / "sales" / f"week={week(i)}" for i in range(WEEKS)}

        def monitor_week(i: int) -> tuple[Any, Any]:
            return monitor_flow.monitor_week(spark, settings, config, week(i), Progress("test-monitor"))

        def requests() -> list[Any]:
            if not delta_io.exists(spark, RETRAIN_REQUESTS, settings):
                return []
            return table(spark, settings, RETRAIN_REQUESTS).orderBy("week_start").collect()

        ingest(spark, settings, "outlets", raw / "outlets")
        ingest(spark, settings, "products", raw / "products")
        ingest(spark, settings, "sales", *[deliveries[i] for i in range(34)])
        build(spark, settings, week(0), week(33))
        tracking.configure(settings, config.registry.experiment)
        assert train(spark, settings, config, None, promote=True) == 0
        ingest(spark, settings, "sales", deliveries[34], deliveries[35])
        build(spark, settings, week(34), week(35))

        steps["unchanged"] = monitor_week(35), requests()
        # Weeks 36 and 37 are delivered, but only 36 is built: the build is behind the deliveries.
        ingest(spark, settings, "sales", deliveries[36], deliveries[37])
        build(spark, settings, week(36), week(36))
        steps["stale"] = monitor_week(36), requests()
        build(spark, settings, week(37), week(37))
        steps["drift"] = monitor_week(36), requests()
        steps["monitoring_version"] = delta_io.version(spark, GOLD_MONITORING, settings)
        with redirect_stdout(io.StringIO()) as said:
            steps["again"] = monitor_week(36), requests()
        steps["again_said"] = said.getvalue()
        ref = monitor_flow.champion_reference(NAME, config.monitoring.reference_weeks)
        other = replace(config, monitoring=replace(config.monitoring, sample_rows=1000))
        steps["inputs"] = [
            monitor_flow.measure_inputs(spark, settings, c, week(36), ref) for c in (config, config, other)
        ]
        steps["monitoring_version_again"] = delta_io.version(spark, GOLD_MONITORING, settings)
        # Kubernetes: the week monitored again by a driver pod with a home of its own (the warehouse and MLflow
        # are shared), then the Airflow worker, a third machine, reads the decision from the tables.
        pod = replace(settings, home=root / "driver-pod", mlflow_tracking_uri=settings.tracking_uri)
        steps["pod"] = monitor_flow.monitor_week(spark, pod, config, week(36), Progress("test-pod"))
        steps["monitoring_version_pod"] = delta_io.version(spark, GOLD_MONITORING, settings)
        worker = replace(settings, home=root / "airflow-worker", mlflow_tracking_uri=settings.tracking_uri)
        steps["worker_decisions"] = {i: stored_decision(worker, week(i)) for i in (35, 36)}
        steps["cooldown"] = monitor_week(37), requests()
        steps["not_landed"] = monitor_week(WEEKS), requests()  # a week nobody delivered yet
        steps["rows"] = table(spark, settings, GOLD_MONITORING).collect()
        steps["settings"] = settings
        steps["champion_before"] = registry.alias_version(NAME, registry.CHAMPION)
        assert monitor.main(["--week", str(week(36)), "--retrain"]) == 0
        yield steps


def _rows(scenario: dict, i: int, check: str) -> dict:
    return {(r.metric, r.column_name): r for r in scenario["rows"] if r.week_start == week(i) and r.check_name == check}


def test_an_unchanged_week_requests_nothing(scenario):
    (decision, request), requests = scenario["unchanged"]
    assert decision.causes == () and not decision.blocked_by and request is None and requests == []
    drift = _rows(scenario, 35, DATA_DRIFT)
    assert drift["drift_share", None].value <= 0.1
    assert _rows(scenario, 35, "retraining")["requested", None].value == 0.0


def test_a_build_behind_the_deliveries_blocks_retraining(scenario):
    (decision, request), requests = scenario["stale"]
    assert DATA_DRIFT in decision.causes  # the drift is there ...
    assert "freshness:silver_sales" in decision.blocked_by and "freshness:gold_features" in decision.blocked_by
    assert not decision.retrain and request is None and requests == []  # ... but bad data does not retrain
    assert "BLOCKED" in decision.summary()


def test_injected_drift_requests_retraining_exactly_once(scenario):
    (decision, request), requests = scenario["drift"]
    assert decision.retrain and not decision.blocked_by
    assert len(requests) == 1
    only = requests[0]
    assert (only.request_id, only.week_start, only.model_name) == (request, week(36), NAME)
    assert DATA_DRIFT in only.causes and set(only.causes) <= {DATA_DRIFT, QUALITY}
    drift = _rows(scenario, 36, DATA_DRIFT)
    drifted = {column for (metric, column), r in drift.items() if column and r.status == "warn"}
    # The price columns and the new cluster's region and income drift; price ratios do not (all prices moved).
    assert {"unit_price", "log_price", "region", "income"} <= drifted
    assert "price_index" not in drifted
    assert drift["drift_share", None].status == "fail"
    # Data health is fine once the build caught up: fresh, and the new outlets' volume is within bounds.
    health = [r for r in scenario["rows"] if r.week_start == week(36) and r.check_name in ("freshness", "volume")]
    assert {r.status for r in health} == {"ok"}, [(r.column_name, r.value, r.status) for r in health]


def test_rerunning_a_week_changes_nothing(scenario):
    (decision, request), requests = scenario["again"]
    assert decision.retrain and request == scenario["drift"][0][1]  # the same request, not a new one
    assert len(requests) == 1
    assert scenario["monitoring_version_again"] == scenario["monitoring_version"]
    # Measured from the same inputs: Evidently did not run again.
    assert "measured from the same inputs" in scenario["again_said"] and "Evidently on" not in scenario["again_said"]
    same, again, other_config = scenario["inputs"]
    assert same == again != other_config  # a changed monitoring config measures the week again


def test_a_driver_pod_without_the_reports_folder_keeps_the_week_and_the_worker_reads_the_decision(scenario):
    """On Kubernetes the driver and the Airflow worker share the tables and MLflow, not a home folder."""
    decision, request = scenario["pod"]
    assert decision.retrain and request == scenario["drift"][0][1]
    assert scenario["monitoring_version_pod"] == scenario["monitoring_version"]  # the week kept as it was
    decisions = scenario["worker_decisions"]
    (recorded,) = scenario["drift"][1]
    causes = list(recorded.causes)
    assert decisions[36] == {"week": str(week(36)), "retrain": True, "request_id": request, "causes": causes}
    assert decisions[35] == {"week": str(week(35)), "retrain": False, "request_id": None, "causes": []}
    with pytest.raises(DataError, match="has no retraining decision"):
        stored_decision(scenario["settings"], week(WEEKS + 5))


def test_a_second_drifted_week_within_the_cooldown_requests_nothing(scenario):
    (decision, request), requests = scenario["cooldown"]
    assert DATA_DRIFT in decision.causes and not decision.retrain and request is None
    assert decision.cooldown[DATA_DRIFT] == week(36)
    assert len(requests) == 1


def test_a_week_not_yet_delivered_is_data_health_only_and_blocked(scenario):
    (decision, request), requests = scenario["not_landed"]
    assert decision.causes == () and "freshness:bronze_sales" in decision.blocked_by and request is None
    assert len(requests) == 1  # still only the request of week 36
    checks = {r.check_name for r in scenario["rows"] if r.week_start == week(WEEKS)}
    assert checks == {"freshness", "volume", "retraining"}
    folder = scenario["settings"].reports_dir / week(WEEKS).isoformat()
    assert [p.name for p in folder.iterdir()] == ["decision.json"]  # no report without data


def test_reports_are_html_naming_the_drifted_columns(scenario):
    folder = scenario["settings"].reports_dir / week(36).isoformat()
    assert sorted(p.name for p in folder.iterdir()) == [
        "data_drift.html",
        "decision.json",
        "prediction_drift.html",
        "quality.html",
    ]
    parser = _Html()
    parser.feed((folder / "data_drift.html").read_text())
    parser.close()
    assert {"html", "head", "body", "script"} <= parser.tags
    html = (folder / "data_drift.html").read_text()
    assert "unit_price" in html and "region" in html and "income" in html
    assert "predicted_units" in (folder / "prediction_drift.html").read_text()


def test_monitoring_runs_hold_the_reports_in_mlflow(scenario):
    share = _rows(scenario, 36, DATA_DRIFT)["drift_share", None].value
    run_id = next(r.monitor_run_id for r in scenario["rows"] if r.week_start == week(36))
    run = registry.client().get_run(run_id)
    assert run.data.tags["monitor.week"] == week(36).isoformat()
    artifacts = {a.path for a in registry.client().list_artifacts(run_id, "evidently")}
    assert artifacts == {"evidently/data_drift.html", "evidently/prediction_drift.html", "evidently/quality.html"}
    assert run.data.metrics["data_drift.drift_share"] == pytest.approx(share)


def test_retraining_goes_through_training_and_the_gate(scenario):
    from mlflow import MlflowClient

    (_, request), _ = scenario["drift"]
    runs = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string=f"tags.`retrain.request_id` = '{request}'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    version = MlflowClient().search_model_versions(f"run_id = '{runs[0].info.run_id}'")[0]
    assert "gate.passed" in version.tags  # gated like any training run
