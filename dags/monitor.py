"""Weekly, after scoring: Evidently reports, data health and the retraining decision for the week that
landed; a retraining request triggers `train` with the request in its run conf.

`lakehouse monitor` records at most one request per week (rate-limited per cause) and writes its
decision beside the week's reports; the short-circuit task reads it, so nothing downstream runs when
there is no new request.
"""

import json

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import task

from lakehouse.orchestration import WEEK, SparkJob, waits_for, weekly_dag

REQUEST_ID = "{{ ti.xcom_pull(task_ids='retrain_requested')['request_id'] }}"


@task.short_circuit
def retrain_requested(week: str) -> dict | bool:
    """The decision `monitor` wrote for the week: its request, or False (the trigger is then skipped)."""
    from lakehouse.settings import load_settings

    decision = json.loads((load_settings().reports_dir / week / "decision.json").read_text())
    return decision if decision["retrain"] else False


with weekly_dag("monitor", __doc__):
    scored = waits_for("scored", "score", "score")
    monitor = SparkJob(task_id="monitor", module="jobs.monitor", args=["--week", WEEK])
    decision = retrain_requested(WEEK)
    trigger_train = TriggerDagRunOperator(
        task_id="trigger_train",
        trigger_dag_id="train",
        # One train run per request: a re-run of this week's monitoring finds it and skips.
        trigger_run_id="retrain__" + REQUEST_ID,
        skip_when_already_exists=True,
        conf={"request_id": REQUEST_ID},
    )
    scored >> monitor >> decision >> trigger_train
