"""ingest_and_build under a real Airflow: scheduler (LocalExecutor) and API server on a PostgreSQL
metadata database, a manual run and a one-week backfill from the CLI.

What dag.test() cannot show: the scheduler creates and queues the runs, the executor starts every task
in its own process that reports to the execution API, runs of different kinds (the run unpausing
starts, a manual run, backfill runs) share the writers' pool instead of racing on Delta tables, and
the tables come out as the same weeks built in-process, and the pseudonymisation key, given only as
the Airflow connection, reaches the jobs and no log, rendered field or command line. PostgreSQL restarts
under a running Spark task: the scheduler exits with the error (or hangs, and the chart's liveness probe,
run here as the kubelet would, restarts it) and, started again as Kubernetes would, completes every run
with no step skipped (docs/runbooks/failures.md). This is the test of the production path (a spark-submit
per task); tests/dags/test_dags.py runs the same DAGs in-process.
That re-running a run changes nothing is the jobs' property, shown without a scheduler (test_dags
re-runs the DAG in-process; the backfill again, four more spark-submits, took a third of this test's 760 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import sample_data
from lakehouse.contracts.pii import hmac_hex
from lakehouse.io.catalog import BRONZE_SALES, GOLD_FEATURES, QUARANTINE, SILVER_OUTLETS, SILVER_SALES
from lakehouse.settings import PII_SECRET_ENV
from tests.conftest import use_home
from tests.dags.conftest import DAGS, SPARK_DEFAULT
from tests.integration import servers
from tests.integration.helpers import assert_same_content, build, ingest, table

pytestmark = pytest.mark.slow  # real servers: see the module docstring

DAG_ID = "ingest_and_build"
WEEKS = [date(2024, 1, 1), date(2024, 1, 8)]
OUTLETS, PRODUCTS = 20, 3
# Longer than the scheduler's idle loop (1 s), so the scheduler meets the outage; shorter than the ~12 s of
# failed calls (3 heartbeats of 5 attempts, with backoff) after which a task's supervisor ends the task.
DB_DOWN_SECONDS = 5
# What the scheduler logs before it exits on a lost metadata database (airflow/jobs/scheduler_job_runner.py).
SCHEDULER_DB_ERROR = "Exception when executing SchedulerJob._run_scheduler_loop"
# The official chart's scheduler liveness probe (apache/airflow chart/values.yaml, scheduler.livenessProbe and
# terminationGracePeriodSeconds): `airflow jobs check --job-type SchedulerJob --local` every 60 s with a 20 s
# timeout, 10 s after the start; 5 failures in a row and the container gets SIGTERM, then SIGKILL 10 s later.
PROBE = ["jobs", "check", "--job-type", "SchedulerJob", "--local"]
PROBE_DELAY, PROBE_PERIOD, PROBE_TIMEOUT, PROBE_FAILURES, GRACE = 10, 60, 20, 5, 10
# The pseudonymisation key as a deployment gives it: only as the Airflow connection, not in the environment.
CONNECTION_SECRET = "airflow-connection-pii-key-00112233445566778899aabbccddeeff"


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("landing")
    args = ["--outlets", str(OUTLETS), "--products", str(PRODUCTS), "--weeks", str(len(WEEKS)), "--start", "2024-01-01"]
    assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
    return raw


@pytest.fixture(scope="module")
def metadata_db() -> Iterator[servers.Postgres]:
    with servers.postgres(databases=("airflow",)) as pg:
        yield pg


@pytest.fixture(scope="module")
def airflow(metadata_db: servers.Postgres, landing: Path, tmp_path_factory) -> Iterator[servers.Airflow]:
    work = tmp_path_factory.mktemp("airflow")
    env = {
        "AIRFLOW_CONN_SPARK_DEFAULT": SPARK_DEFAULT,
        "LAKEHOUSE_HOME": str(work / "home"),
        "LAKEHOUSE_LANDING": str(landing),
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_DRIVER_MEMORY": "1g",
        "AIRFLOW_CONN_LAKEHOUSE_PII": json.dumps({"conn_type": "generic", "password": CONNECTION_SECRET}),
    }
    without = (PII_SECRET_ENV,)  # the key only as the connection, as a deployment gives it
    with servers.airflow(metadata_db.url("airflow"), DAGS, work, env, without) as af:
        # What `make up` and `make run` do: without the pool, the scheduler never queues a Spark task.
        create = "from lakehouse.orchestration import create_pools; create_pools()"
        subprocess.run([sys.executable, "-c", create], env=af.env, check=True, capture_output=True)
        yield af


def _query(af: servers.Airflow, sql: str) -> list[tuple]:
    """The rows of `sql` (with the DAG's id as its one parameter) from the metadata database."""
    import psycopg2

    with psycopg2.connect(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")) as conn:
        with conn.cursor() as cur:
            cur.execute(sql, (DAG_ID,))
            return cur.fetchall()


def _runs(af: servers.Airflow) -> dict[str, tuple[str, str]]:
    """run_id -> (run_type, state) of the DAG's runs."""
    rows = _query(af, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s")
    return {run_id: (run_type, state) for run_id, run_type, state in rows}


def _task_states(af: servers.Airflow) -> dict[tuple[str, str], str | None]:
    """(run_id, task_id) -> state of the DAG's task instances."""
    rows = _query(af, "SELECT run_id, task_id, state FROM task_instance WHERE dag_id = %s")
    return {(run_id, task_id): state for run_id, task_id, state in rows}


def _rendered_fields(af: servers.Airflow) -> list[str]:
    """Every task's rendered template fields as the scheduler stored them (JSON text)."""
    rows = _query(af, "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = %s")
    return [json.dumps(fields) for (fields,) in rows]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:]


def _wait_for_a_running_task(af: servers.Airflow, timeout: float = 600) -> tuple[str, str]:
    """(run_id, task_id) of a task instance in state running; fails with the scheduler's log on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [key for key, state in _task_states(af).items() if state == "running"]
        if running:
            return running[0]
        time.sleep(1)
    pytest.fail(f"no task running after {timeout:.0f} s: {_task_states(af)}\n{_tail(af.log('scheduler'))}")


def _wait_for_runs(
    af: servers.Airflow, count: int, timeout: float = 1800
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Until `count` runs exist and none is queued or running, doing what Kubernetes does for the scheduler's
    container: start it again whenever it exits, and restart it when its liveness probe fails PROBE_FAILURES
    times in a row. Returns the runs and, per stop, how it stopped and the scheduler's log until then.

    Fails with the scheduler's log on timeout.
    """
    stops: list[str] = []
    deadline = time.monotonic() + timeout
    started, next_probe, failures = time.monotonic(), time.monotonic() + PROBE_DELAY, 0
    while time.monotonic() < deadline:
        scheduler = af.procs["scheduler"]
        stopped = None
        if scheduler.poll() is not None:
            stopped = f"exit code {scheduler.returncode}"
        elif time.monotonic() >= next_probe:
            failures = 0 if _probe(af) else failures + 1
            next_probe = time.monotonic() + PROBE_PERIOD
            if failures >= PROBE_FAILURES:
                stopped = f"liveness probe failed {failures} times in {time.monotonic() - started:.0f} s\n"
                stopped += _kill_container(scheduler)
        if stopped is not None:
            stops.append(f"{stopped}\n{af.log('scheduler').read_text(errors='replace')}")
            af.start("scheduler")
            started, next_probe, failures = time.monotonic(), time.monotonic() + PROBE_DELAY, 0
        runs = _runs(af)
        if len(runs) >= count and all(state in ("success", "failed") for _, state in runs.values()):
            return runs, stops
        time.sleep(5)
    pytest.fail(f"runs not finished after {timeout:.0f} s: {_runs(af)}\n{_tail(af.log('scheduler'))}")


def _probe(af: servers.Airflow) -> bool:
    """The chart's liveness probe: does the local scheduler job have a heartbeat younger than 30 s?"""
    cmd = [str(Path(sys.executable).with_name("airflow")), *PROBE]
    try:
        return subprocess.run(cmd, env=af.env, capture_output=True, timeout=PROBE_TIMEOUT).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _kill_container(proc: subprocess.Popen) -> str:
    """What the kubelet does to a container that failed its probe: SIGTERM to every process in it, SIGKILL
    after the grace period. Returns the processes as they were (title, state, kernel wait), for the record."""
    ps = ["ps", "-o", "pid,ppid,stat,wchan:24,args", "--sid", str(proc.pid)]
    processes = subprocess.run(ps, capture_output=True, text=True).stdout
    servers.stop_group(proc, grace=GRACE)
    return processes


def test_a_manual_run_and_a_backfill_through_the_scheduler(
    spark, airflow: servers.Airflow, metadata_db: servers.Postgres, landing: Path, tmp_path, monkeypatch
):
    # Unpausing starts the run of the latest complete week (catchup is off): it lands every delivery
    # and builds a week with no sales. A manual run triggered through the REST API covers the week
    # ending at its logical date (`airflow dags trigger --logical-date` would cover the week ending now).
    airflow.cli("dags", "unpause", DAG_ID)
    run = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": "2024-01-15T06:00:00Z"})
    assert run["data_interval_start"].startswith("2024-01-08T06:00:00"), run
    airflow.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", "2024-01-01", "--to-date", "2024-01-02")
    # The metadata database restarted under a running Spark task (runbook "Airflow's metadata database
    # restarted"). The scheduler retries a query for seconds at most: it logs the error and exits, once its
    # LocalExecutor has let the running task finish, and is started again by its supervisor. The API server
    # answers 500 meanwhile and reconnects; the task's supervisor retries its calls through that.
    running = _wait_for_a_running_task(airflow)
    metadata_db.restart(down=DB_DOWN_SECONDS)
    runs, stops = _wait_for_runs(airflow, 3)
    assert sorted(kind for kind, _ in runs.values()) == ["backfill", "manual", "scheduled"], runs
    assert {state for _, state in runs.values()} == {"success"}, runs
    # Every step ran and succeeded, the one that was running included: none skipped, none without its state.
    tasks = _task_states(airflow)
    assert running in tasks and set(tasks.values()) == {"success"} and len(tasks) == 2 * len(runs), tasks
    # It stopped once: it exited with code 1 or, if its shutdown hung (seen once, on a busy CI machine: no exit
    # for 18 minutes after "Shutting down LocalExecutor" and its task's end), its liveness probe restarted it.
    assert len(stops) == 1, f"the scheduler stopped {len(stops)} times (expected once, at the restart)"
    how = stops[0].split("\n", 1)[0]
    assert how == "exit code 1" or how.startswith("liveness probe failed"), stops[0][-4000:]
    assert SCHEDULER_DB_ERROR in stops[0] and "psycopg2.OperationalError" in stops[0], stops[0][-4000:]
    assert airflow.procs["api-server"].poll() is None, _tail(airflow.log("api-server"))

    settings = use_home(monkeypatch, Path(airflow.env["LAKEHOUSE_HOME"]))
    silver = table(spark, settings, SILVER_SALES)
    assert sorted(r.week_start for r in silver.select("week_start").distinct().collect()) == WEEKS
    # Every raw row is accounted for: in silver or in quarantine.
    bronze_rows = table(spark, settings, BRONZE_SALES).count()
    assert bronze_rows == silver.count() + table(spark, settings, QUARANTINE).count() >= OUTLETS * PRODUCTS * len(WEEKS)
    features = table(spark, settings, GOLD_FEATURES)
    # Runs finished in whatever order the scheduler chose, yet every week after the first has its lags.
    later = features.filter(F.col("week_start") > F.lit(WEEKS[0]))
    assert later.count() == (len(WEEKS) - 1) * OUTLETS * PRODUCTS
    assert later.filter(F.col("units_lag_1").isNull()).count() == 0
    assert not (settings.home / "alerts.log").exists()

    # The key came from the connection (silver holds pseudonyms made with it) and went nowhere else: not
    # into a rendered field, the scheduler's, API server's or a task's log (spark-submit's output included).
    owner = table(spark, settings, SILVER_OUTLETS).filter(F.col("outlet_id") == "OUT000003").first()
    assert owner is not None and owner["contact_key"] == hmac_hex(CONNECTION_SECRET.encode(), "owner00001@example.com")
    rendered = _rendered_fields(airflow)
    assert any("2024-01-08" in fields for fields in rendered), "the tasks' rendered fields were stored"
    logs = [p.read_text(errors="replace") for p in airflow.home.parent.rglob("*.log")]
    assert any("spark-submit" in text.lower() for text in logs), "the tasks' output was logged"
    assert all(CONNECTION_SECRET not in text for text in (*rendered, *logs))

    # The same weeks built in-process, in order, with the same key, give the same tables.
    monkeypatch.setenv(PII_SECRET_ENV, CONNECTION_SECRET)
    reference = use_home(monkeypatch, tmp_path / "in-process")
    ingest(spark, reference, "outlets", landing / "outlets")
    ingest(spark, reference, "products", landing / "products")
    ingest(spark, reference, "sales", *sorted((landing / "sales").glob("week=*")))
    build(spark, reference, WEEKS[0], WEEKS[-1])
    for t in (SILVER_SALES, QUARANTINE, GOLD_FEATURES):
        assert_same_content(table(spark, settings, t), table(spark, reference, t), drop=("_ingested_at",))
