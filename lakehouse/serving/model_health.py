"""The model's health week by week, for the /monitoring page: gold_monitoring's rows and the retraining requests.

`lakehouse monitor` writes one row per figure and week (contracts/gold_monitoring.yaml); the page needs a few
of them per week: the drift share, WAPE and bias with the thresholds they were graded against, the worst
data-health status, the retraining decision, and the names of the week's Evidently reports. Per-column drift
rows stay in the table (the reports show them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from lakehouse.io.delta_log import records
from lakehouse.monitoring.checks import DATA_DRIFT, FAIL, HEALTH_CHECKS, INFO, OK, QUALITY, WARN
from lakehouse.monitoring.retraining import REQUESTED, RETRAINING

# What the page reads of gold_monitoring and audit_retrain_requests.
MONITORING_COLUMNS = (
    "week_start",
    "check_name",
    "metric",
    "column_name",
    "value",
    "threshold",
    "status",
    "model_version",
    "monitor_run_id",
)
REQUEST_COLUMNS = ("request_id", "week_start", "model_version", "causes", "reason", "requested_at")
SEVERITY = {OK: 0, INFO: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Figure:
    """A graded figure of a week: its value, the threshold it was compared with, and the status."""

    value: float | None
    threshold: float | None
    status: str


@dataclass(frozen=True)
class RetrainRequest:
    request_id: str
    causes: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class MonitoredWeek:
    week: date
    model_version: str
    drift_share: Figure | None
    wape: Figure | None
    bias: Figure | None
    health: str  # the worst status of the week's freshness, volume, null and range checks (ok without any)
    health_failures: tuple[str, ...]  # "freshness gold_features", ... (warn or fail)
    retrain_requested: bool
    retrain_blocked: bool
    request: RetrainRequest | None
    monitor_run_id: str | None
    reports: tuple[str, ...]  # the week's Evidently report files, e.g. data_drift.html (lakehouse.serving.reports)


def _figure(row: Mapping | None) -> Figure | None:
    return None if row is None else Figure(row["value"], row["threshold"], row["status"])


def _week(
    week: date, rows: list[dict], request: RetrainRequest | None, reports: Callable[[date, str | None], tuple[str, ...]]
) -> MonitoredWeek:
    whole = {(r["check_name"], r["metric"]): r for r in rows if r["column_name"] is None}
    health = [r for r in rows if r["check_name"] in HEALTH_CHECKS]
    worst = max((r["status"] for r in health), key=SEVERITY.__getitem__, default=OK)
    failures = tuple(
        f"{r['check_name']} {r['column_name'] or r['metric']}" for r in health if SEVERITY[r["status"]] > 0
    )
    requested, blocked = whole.get((RETRAINING, REQUESTED)), whole.get((RETRAINING, "blocked"))
    run_id = next((r["monitor_run_id"] for r in rows if r["monitor_run_id"]), None)
    return MonitoredWeek(
        week=week,
        model_version=rows[0]["model_version"],
        drift_share=_figure(whole.get((DATA_DRIFT, "drift_share"))),
        wape=_figure(whole.get((QUALITY, "wape"))),
        bias=_figure(whole.get((QUALITY, "bias"))),
        health=worst,
        health_failures=failures,
        retrain_requested=bool(requested and requested["value"]),
        retrain_blocked=bool(blocked and blocked["value"]),
        request=request,
        monitor_run_id=run_id,
        reports=reports(week, run_id),
    )


def monitored_weeks(
    monitoring: pa.Table | None, requests: pa.Table | None, reports: Callable[[date, str | None], tuple[str, ...]]
) -> tuple[MonitoredWeek, ...]:
    """Every monitored week, oldest first (none when the tables were not written yet).

    `monitoring` holds MONITORING_COLUMNS of gold_monitoring, `requests` REQUEST_COLUMNS of
    audit_retrain_requests; `reports(week, monitor_run_id)` names the week's report files.
    """
    if monitoring is None:
        return ()
    by_week: dict[date, list[dict]] = defaultdict(list)
    for row in records(monitoring):
        by_week[row["week_start"]].append(row)
    asked = {} if requests is None else {r["week_start"]: r for r in records(requests)}
    weeks = []
    for week in sorted(by_week):
        made = asked.get(week)
        request = None if made is None else RetrainRequest(made["request_id"], tuple(made["causes"]), made["reason"])
        weeks.append(_week(week, by_week[week], request, reports))
    return tuple(weeks)
