"""What the Airflow DAGs share: Spark tasks, retries, failure alerts, the weekly timetable and the Assets.

Every Spark task is `spark-submit scripts/spark_job.py jobs.<name> ...` on the `spark_default`
connection, so the same DAG runs on `local[*]` or a cluster by changing the connection, never the DAG;
a local connection may ask for the job to run in the task's own process instead (see SparkJob).
DAG files import this module, and Airflow parses them often: it imports Airflow and the platform's
settings only, and resolves jars and paths when a task runs, not when a DAG is parsed.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG, Asset
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse.settings import PII_CONNECTION, PII_SECRET_ENV, REPO_ROOT, driver_java_options, load_settings

LAUNCHER = REPO_ROOT / "scripts" / "spark_job.py"
# Weeks run Monday to Sunday; a run covers [Monday 06:00, next Monday 06:00) and starts when it ends.
START = datetime(1990, 6, 11, 6, tzinfo=UTC)  # the first week of the sample data (Dominick's)
WEEK = "{{ data_interval_start | ds }}"  # the week a run covers (its Monday)
NEXT_WEEK = "{{ data_interval_end | ds }}"


def weekly() -> CronDataIntervalTimetable:
    return CronDataIntervalTimetable("0 6 * * 1", timezone="UTC")


# One writer at a time. The jobs' Delta writes (ledger appends, week replaces, reference overwrites) are
# not built to run side by side on the same tables: every Spark task takes this pool's single slot, so a
# scheduled run, a backfill's runs and a manual run queue instead of conflicting. `create_pools` makes it.
WRITERS_POOL = "lakehouse_writers"


def create_pools() -> None:
    """Create the writers' pool with one slot if it is missing (an existing pool is left as configured)."""
    from airflow.models.pool import Pool

    if Pool.get_pool(WRITERS_POOL) is None:
        Pool.create_or_update_pool(
            WRITERS_POOL,
            slots=1,
            description="lakehouse Spark jobs: one Delta writer at a time",
            include_deferred=False,
        )


# Assets: the tables that start other DAGs when a task updates them.
GOLD_FEATURES = Asset("gold_features")
GOLD_RECOMMENDATIONS = Asset("gold_recommendations")


def landing() -> str:
    """Where deliveries land (`<landing>/{outlets,products,sales/week=*}`): LAKEHOUSE_LANDING, else the sample data."""
    return load_settings().landing


def alert(context: dict[str, Any]) -> None:
    """A task failed after its retries: one JSON line in $LAKEHOUSE_HOME/alerts.log, and a POST of the
    same to LAKEHOUSE_ALERT_WEBHOOK when set. An unreachable webhook is reported, never raised."""
    ti = context.get("task_instance") or context.get("ti")
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id") or getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "error": str(context.get("exception") or "")[:1000],
    }
    line = json.dumps(record, sort_keys=True)
    settings = load_settings()
    path = settings.home / "alerts.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(line + "\n")
    webhook = settings.alert_webhook
    if webhook:
        request = urllib.request.Request(webhook, line.encode(), {"Content-Type": "application/json"}, method="POST")
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError as exc:
            print(f"alert webhook {webhook} failed: {exc}", file=sys.stderr)


DEFAULT_ARGS: dict[str, Any] = {
    "owner": "lakehouse",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": alert,
}


# Jobs that write silver, where columns classified pii are pseudonymised with the key of PII_CONNECTION.
PII_JOBS = frozenset({"jobs.build", "jobs.backfill"})


def pii_secret_env(module: str, spark_conn_id: str) -> dict[str, str]:
    """The pseudonymisation key from the Airflow connection, as the job's environment variable.

    Only for jobs that write silver, and only when spark-submit keeps it in its environment: for a
    Kubernetes or YARN master the provider would put it on the command line (`--conf ...driverEnv`),
    so there the driver gets it from the cluster's Secret instead (helm/lakehouse's spark-defaults).
    Read when the task runs, after its templates were rendered, so the key is in no rendered field; the
    task SDK masks a connection's password in task logs. Without the connection, the worker's own
    environment may carry the variable; the job says so when neither does.
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    if module not in PII_JOBS or spark_master(spark_conn_id)[0].startswith(("k8s://", "yarn")):
        return {}
    try:
        connection = BaseHook.get_connection(PII_CONNECTION)
    except AirflowNotFoundException:
        return {}
    return {PII_SECRET_ENV: connection.password} if connection.password else {}


def submit_paths(jars: list[Path], in_image: bool) -> tuple[str, str]:
    """spark-submit's application and --jars.

    On Kubernetes (cluster mode, LAKEHOUSE_SPARK_PATHS_IN_IMAGE=true) the driver and executors run the
    platform image, which holds the launcher and jars at the same paths: `local://` tells spark-submit
    they are there, instead of uploading them.
    """
    scheme = "local://" if in_image else ""
    return f"{scheme}{LAUNCHER}", ",".join(f"{scheme}{p}" for p in jars)


def spark_master(conn_id: str) -> tuple[str, bool]:
    """The Spark connection's master, and whether its extra asks to run jobs in the task's own process.

    `"in-process": true` is what scripts/airflow-env.sh gives local masters (`make run`, `make up`).
    Without the connection, the Spark provider submits to YARN.
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return "yarn", False
    return connection.host or "yarn", bool(connection.extra_dejson.get("in-process"))


class SparkJob(SparkSubmitOperator):
    """`spark-submit scripts/spark_job.py <module> <args>`: a platform job as one Spark application.

    The driver runs this interpreter (the one with the platform's packages) and gets the jars of
    LAKEHOUSE_JARS_DIR, the driver memory and the log settings the jobs get when started by hand.
    When the Spark connection says `in-process`, the same `main(args)` runs in the task's process
    instead, on the Spark session it keeps between tasks (lakehouse.io.spark_jobs): with `dag.test()`,
    which runs every task of a DAG in one process, the jobs then share one warm JVM.
    """

    def __init__(self, *, task_id: str, module: str, args: list[str] | None = None, **kwargs: Any) -> None:
        python = sys.executable
        super().__init__(
            task_id=task_id,
            conn_id="spark_default",
            application=str(LAUNCHER),
            application_args=[module, *(args or [])],
            name=f"lakehouse-{task_id}",
            spark_binary=str(Path(python).parent / "spark-submit"),
            driver_memory=load_settings().driver_memory,
            env_vars={"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python},
            pool=kwargs.pop("pool", WRITERS_POOL),
            **kwargs,
        )
        self.module = module

    def execute(self, context: Any) -> None:
        dag_id = context["dag"].dag_id if "dag" in context else "airflow"
        env = {"LAKEHOUSE_ACTOR": f"airflow:{dag_id}", **pii_secret_env(self.module, self._conn_id)}
        master, in_process = spark_master(self._conn_id)
        if in_process:
            from airflow.exceptions import AirflowException

            from lakehouse.io.spark_jobs import run_job

            args = (self.application_args or [])[1:]  # rendered by now; the first is the module
            code = run_job(self.module, args, {**env, "LAKEHOUSE_SPARK_MASTER": master})
            if code:
                raise AirflowException(f"{self.module} exited with code {code} (its error is in the log above)")
            return
        settings = load_settings()
        jars = sorted(settings.jars_dir.glob("*.jar"))
        if not jars:
            raise RuntimeError(f"no Spark jars in {settings.jars_dir}: run `make jars` (or set LAKEHOUSE_JARS_DIR)")
        self.application, self.jars = submit_paths(jars, settings.spark_paths_in_image)
        java_options = driver_java_options(settings, master=master)
        self.conf = {"spark.driver.extraJavaOptions": java_options, **(self.conf or {})}
        self.env_vars = {**env, **(self.env_vars or {})}
        super().execute(context)


def weekly_dag(dag_id: str, doc: str | None, **kwargs: Any) -> DAG:
    """A DAG with one run per week (see `weekly`), one run at a time, and the shared task defaults."""
    return DAG(
        dag_id=dag_id,
        schedule=weekly(),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        doc_md=doc,
        tags=["lakehouse"],
        **kwargs,
    )


def waits_for(task_id: str, dag_id: str, external_task_id: str) -> ExternalTaskSensor:
    """Wait for a task of another weekly DAG's run of the same week; rescheduled, so it holds no worker slot."""
    return ExternalTaskSensor(
        task_id=task_id,
        external_dag_id=dag_id,
        external_task_id=external_task_id,
        poke_interval=60,
        timeout=6 * 3600,
        mode="reschedule",
    )
