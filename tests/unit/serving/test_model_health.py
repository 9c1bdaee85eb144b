"""The /monitoring page's weeks from gold_monitoring rows: graded figures, the worst data health, the decision."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from lakehouse.serving.model_health import Figure, RetrainRequest, monitored_weeks

MEASURED, HEALTH_ONLY = date(2024, 3, 4), date(2024, 3, 11)


def row(week: date, check: str, metric: str, column: str | None, value: float | None, limit=None, status="ok") -> dict:
    return {
        "week_start": week,
        "check_name": check,
        "metric": metric,
        "column_name": column,
        "value": value,
        "threshold": limit,
        "status": status,
        "model_version": "3",
        "monitor_run_id": None if week == HEALTH_ONLY else "run-1",
    }


def test_each_week_has_its_graded_figures_worst_health_and_decision():
    rows = [
        row(MEASURED, "data_drift", "drift_share", None, 0.4, 0.3, "fail"),
        row(MEASURED, "data_drift", "wasserstein", "unit_price", 0.5, 0.1, "warn"),  # a column's: not a health check
        row(MEASURED, "quality", "wape", None, 0.2, 0.25),
        row(MEASURED, "quality", "bias", None, None, 0.15, "fail"),  # could not be computed
        row(MEASURED, "nulls", "null_rate", "units", 0.1, 0.05, "warn"),
        row(MEASURED, "retraining", "requested", None, 1.0, None, "warn"),
        row(MEASURED, "retraining", "blocked", None, 0.0),
        # A week not in gold_features yet: data health and the decision only.
        row(HEALTH_ONLY, "freshness", "lag_weeks", "gold_features", 2.0, 0.0, "fail"),
        row(HEALTH_ONLY, "volume", "relative_change", None, None, None, "info"),
        row(HEALTH_ONLY, "retraining", "requested", None, 0.0),
        row(HEALTH_ONLY, "retraining", "blocked", None, 1.0, None, "fail"),
    ]
    requests = pa.Table.from_pylist(
        [
            {
                "request_id": "r1",
                "week_start": MEASURED,
                "model_version": "3",
                "causes": ["data_drift"],
                "reason": "drift",
            }
        ]
    )
    listed = []

    def reports(week: date, run_id: str | None) -> tuple[str, ...]:
        listed.append((week, run_id))
        return ("data_drift.html",) if run_id else ()

    measured, health_only = monitored_weeks(pa.Table.from_pylist(rows[::-1]), requests, reports)
    assert (measured.week, health_only.week) == (MEASURED, HEALTH_ONLY)  # oldest first, whatever the row order
    assert measured.drift_share == Figure(0.4, 0.3, "fail") and measured.wape == Figure(0.2, 0.25, "ok")
    assert measured.bias == Figure(None, 0.15, "fail")
    assert (measured.health, measured.health_failures) == ("warn", ("nulls units",))
    assert measured.retrain_requested and not measured.retrain_blocked
    assert measured.request == RetrainRequest("r1", ("data_drift",), "drift")
    assert measured.reports == ("data_drift.html",) and measured.model_version == "3"

    assert health_only.drift_share is None and health_only.wape is None and health_only.bias is None
    assert (health_only.health, health_only.health_failures) == ("fail", ("freshness gold_features",))
    assert health_only.retrain_blocked and not health_only.retrain_requested and health_only.request is None
    assert listed == [(MEASURED, "run-1"), (HEALTH_ONLY, None)]


def test_no_table_no_weeks():
    assert monitored_weeks(None, None, lambda week, run_id: ()) == ()
