"""Weekly, after scoring: Evidently reports, data health and the retraining decision for the week that
landed; a retraining request triggers `train` with the request in its run conf.

`lakehouse monitor` records at most one request per week (rate-limited per cause) and stores its
decision in gold_monitoring; the short-circuit task reads it from there (delta-rs, no Spark), so nothing
downstream runs when there is no request. It reads the tables, not a file of the job's: on Kubernetes the
job's driver is another pod.
"""

from datetime import date

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import task

from lakehouse.orchestration import WEEK, SparkJob, waits_for, weekly_dag

REQUEST_ID = "{{ ti.xcom_pull(task_ids='retrain_requested')['request_id'] }}"


@task.short_circuit
def retrain_requested(week: str) -> dict | bool:
    """The decision `monitor` stored for the week: its request, or False (the trigger is then skipped)."""
    from lakehouse.monitoring.decisions import stored_decision
    from lakehouse.settings import load_settings

    decision = stored_decision(load_settings(), date.fromisoformat(week))
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
