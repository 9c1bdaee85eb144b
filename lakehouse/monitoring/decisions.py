"""A monitored week's retraining decision as `lakehouse monitor` stored it, read without Spark (delta-rs).

The monitor DAG branches on it. It reads the tables, not a file the monitoring job wrote: on Kubernetes
the job's Spark driver is another pod than the Airflow worker, and only the warehouse (and MLflow) are
shared. The week's `retraining / requested` row in gold_monitoring says whether it asks for retraining;
the request itself (its causes) is the week's row in audit_retrain_requests, whose id is derived from the
model and the week.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from lakehouse.errors import DataError
from lakehouse.io import delta_log
from lakehouse.io.catalog import GOLD_MONITORING, RETRAIN_REQUESTS
from lakehouse.monitoring.retraining import REQUESTED, RETRAINING, request_id
from lakehouse.settings import Settings


def stored_decision(settings: Settings, week: date) -> dict[str, Any]:
    """{"week", "retrain", "request_id", "causes"} of the week; a clear error when it was never monitored."""
    rows = []
    if delta_log.exists(GOLD_MONITORING, settings):
        columns = ["model_name", "check_name", "metric", "value"]
        arrow = delta_log.read_arrow(GOLD_MONITORING, settings, columns, [("week_start", "=", week)])
        rows = [r for r in delta_log.records(arrow) if (r["check_name"], r["metric"]) == (RETRAINING, REQUESTED)]
    if not rows:
        raise DataError(f"week {week} has no retraining decision in {GOLD_MONITORING.name}: run `lakehouse monitor`")
    name, retrain = rows[0]["model_name"], bool(rows[0]["value"])
    if not retrain:
        return {"week": week.isoformat(), "retrain": False, "request_id": None, "causes": []}
    rid = request_id(name, week)
    requests = delta_log.records(
        delta_log.read_arrow(RETRAIN_REQUESTS, settings, ["request_id", "causes"], [("request_id", "=", rid)])
    )
    if not requests:
        raise DataError(f"week {week} requests retraining but request {rid} is not in {RETRAIN_REQUESTS.name}")
    return {"week": week.isoformat(), "retrain": True, "request_id": rid, "causes": list(requests[0]["causes"])}
