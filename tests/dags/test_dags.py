"""The DAGs: they load without errors or heavy imports, have the intended shape, and run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pendulum
import pytest
from pyspark.sql import functions as F

from jobs import sample_data
from lakehouse.contracts.pii import hmac_hex
from lakehouse.io import delta_io
from lakehouse.io.catalog import (
    BRONZE_FILES,
    BRONZE_SALES,
    CONSERVATION,
    GOLD_FEATURES,
    GOLD_SALES_WEEKLY,
    QUARANTINE,
    SILVER_OUTLETS,
    SILVER_SALES,
)
from lakehouse.orchestration import WRITERS_POOL, pii_secret_env, submit_paths
from lakehouse.settings import PII_SECRET_ENV, load_settings
from tests.conftest import BUCKET, use_home
from tests.dags.conftest import DAGS

DAG_IDS = {"ingest_and_build", "train", "score", "monitor"}
# spark_default as `make run` gives it on a local master: jobs run in the task's process (no spark-submit).
IN_PROCESS = json.dumps({"conn_type": "spark", "host": "local[2]", "extra": {"in-process": True}})


def test_the_dags_load_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


def test_parsing_the_dags_imports_no_spark_mlflow_or_evidently():
    code = (
        "import sys; from airflow.models.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(DAGS)!r}, include_examples=False); assert not bag.import_errors; "
        "print(sorted(m for m in ('pyspark', 'mlflow', 'evidently', 'xgboost') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def _edges(dag) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def test_structure_schedules_and_assets(dagbag):
    build_dag, train, score, monitor = (dagbag.dags[d] for d in ("ingest_and_build", "train", "score", "monitor"))
    assert _edges(build_dag) == {("ingest", "build")}
    assert _edges(train) == {("train", "effects")}
    assert _edges(score) == {("built", "score"), ("score", "lift")}
    assert _edges(monitor) == {
        ("scored", "monitor"),
        ("monitor", "retrain_requested"),
        ("retrain_requested", "trigger_train"),
    }
    for dag in (build_dag, score, monitor):
        assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.timetable.summary == "0 6 * * 1"
    # Building updates the gold_features Asset, which schedules training; scoring updates recommendations.
    assert [a.name for a in build_dag.get_task("build").outlets] == ["gold_features"]
    assert type(train.timetable).__name__ == "AssetTriggeredTimetable" and "gold_features" in str(
        train.timetable.asset_condition
    )
    assert [a.name for a in score.get_task("score").outlets] == ["gold_recommendations"]
    for dag in dagbag.dags.values():
        assert dag.max_active_runs == 1 and not dag.catchup
        for task in dag.tasks:
            assert task.retries == 2 and task.retry_exponential_backoff and task.execution_timeout is not None
            assert task.on_failure_callback, task.task_id
    # Each Spark task reads and writes only its data interval.
    # (an initial load names its first week in the run conf: `from_week`)
    assert build_dag.get_task("build").application_args[1:] == [
        "--from",
        "{{ params.from_week or (data_interval_start | ds) }}",
        "--to",
        "{{ data_interval_start | ds }}",
    ]
    # Spark tasks queue for the writers' pool's single slot: no two write the lakehouse at once.
    spark_tasks = [t for dag in dagbag.dags.values() for t in dag.tasks if t.task_type == "SparkJob"]
    assert len(spark_tasks) == 7 and {t.pool for t in spark_tasks} == {WRITERS_POOL}
    assert score.get_task("score").application_args[:3] == ["jobs.score", "--week", "{{ data_interval_end | ds }}"]


def test_spark_tasks_submit_the_job_on_the_spark_default_connection(dagbag):
    task = dagbag.dags["ingest_and_build"].get_task("build")
    hook = task._get_hook()
    command = hook._build_spark_submit_command(task.application)
    assert command[:3] == [str(task._spark_binary), "--master", "local[2]"]
    assert (
        command[-5:]
        == [str(DAGS.parent / "scripts" / "spark_job.py"), *task.application_args[:1], *task.application_args[1:]][-5:]
    )
    assert hook._env["PYSPARK_PYTHON"] == sys.executable


def test_the_spark_provider_submits_to_kubernetes_in_cluster_mode(monkeypatch):
    """The connection helm/airflow gives spark_default (the provider refuses k8s:// without cncf-kubernetes)."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    k8s = {"host": "k8s://https://kubernetes.default.svc:443", "extra": {"deploy-mode": "cluster", "namespace": "ns"}}
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_K8S", json.dumps({"conn_type": "spark", **k8s}))
    command = SparkSubmitHook(conn_id="spark_k8s", name="lakehouse-build")._build_spark_submit_command("app.py")
    joined = " ".join(command)
    assert "--master k8s://https://kubernetes.default.svc:443" in joined and "--deploy-mode cluster" in joined
    assert "spark.kubernetes.namespace=ns" in joined


def test_the_pii_key_goes_to_silver_writers_and_never_onto_a_command_line(monkeypatch):
    connection = {"conn_type": "generic", "password": CONNECTION_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_PII", json.dumps(connection))
    k8s = {
        "conn_type": "spark",
        "host": "k8s://https://kubernetes.default.svc:443",
        "extra": {"deploy-mode": "cluster"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_K8S", json.dumps(k8s))
    assert pii_secret_env("jobs.build", "spark_default") == {PII_SECRET_ENV: CONNECTION_SECRET}
    assert pii_secret_env("jobs.backfill", "spark_default") == {PII_SECRET_ENV: CONNECTION_SECRET}
    assert pii_secret_env("jobs.train", "spark_default") == {}, "only jobs that write silver get it"
    # The provider turns env vars into `--conf spark.kubernetes.driverEnv.*` there: the Secret gives it instead.
    assert pii_secret_env("jobs.build", "spark_k8s") == {}


def test_on_kubernetes_the_launcher_and_jars_are_paths_in_the_image():
    jars = [Path("/opt/lakehouse/jars/delta-spark.jar"), Path("/opt/lakehouse/jars/hadoop-aws.jar")]
    launcher = str(DAGS.parent / "scripts" / "spark_job.py")
    assert submit_paths(jars, in_image=False) == (launcher, ",".join(str(j) for j in jars))
    application, listed = submit_paths(
        jars, load_settings({"LAKEHOUSE_SPARK_PATHS_IN_IMAGE": "true"}).spark_paths_in_image
    )
    assert application == f"local://{launcher}"
    assert listed.split(",") == [f"local://{j}" for j in jars]


@pytest.fixture
def landing(tmp_path, monkeypatch):
    """Synthetic deliveries (20 outlets x 3 products x 10 weeks) as the landing folder, a fresh LAKEHOUSE_HOME."""
    use_home(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("LAKEHOUSE_SHUFFLE_PARTITIONS", "2")
    monkeypatch.setenv("LAKEHOUSE_DRIVER_MEMORY", "1g")
    raw = tmp_path / "landing"
    args = [
        "synthetic",
        "--out",
        str(raw),
        "--outlets",
        "20",
        "--products",
        "3",
        "--weeks",
        "10",
        "--start",
        "2024-01-01",
    ]
    assert sample_data.main(args) == 0
    monkeypatch.setenv("LAKEHOUSE_LANDING", str(raw))
    return raw


def _run(dag, week: date, mark_success_pattern: str | None = None, **conf):
    """A manual run for `week`: its data interval ends when the week does (Monday 06:00 after it).

    `mark_success_pattern` marks matching tasks (the sensors on other DAGs) successful without running them.
    """
    from airflow.utils.state import DagRunState

    for task in dag.tasks:
        task.retries = 0
    end = week + timedelta(weeks=1)
    run = dag.test(
        logical_date=pendulum.datetime(end.year, end.month, end.day, 6, tz="UTC"),
        run_conf=conf or None,
        mark_success_pattern=mark_success_pattern,
    )
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run.state == DagRunState.SUCCESS, states


# The pseudonymisation key as a deployment gives it: only as the Airflow connection, not in the environment.
CONNECTION_SECRET = "airflow-connection-pii-key-00112233445566778899aabbccddeeff"


def _rendered_fields(dag_id: str, run_id: str | None = None) -> dict[str, str]:
    """task_id -> the task's rendered template fields as Airflow stored them (JSON), of one run if given."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.dag_id == dag_id)
    if run_id is not None:
        query = query.where(RenderedTaskInstanceFields.run_id == run_id)
    with create_session() as session:
        return {r.task_id: json.dumps(r.rendered_fields) for r in session.scalars(query)}


@pytest.mark.world  # two DAG runs end to end: `make test` runs it, `make test-fast` not
def test_ingest_and_build_runs_a_week_end_to_end(spark, dagbag, airflow_db, landing, monkeypatch, capfd):
    """`make run`'s mode: the jobs inside the task's process (test_scheduler runs the same DAG with a
    spark-submit per task under a real scheduler, and compares its tables with an in-process build)."""
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", IN_PROCESS)
    monkeypatch.delenv(PII_SECRET_ENV)
    connection = {"conn_type": "generic", "password": CONNECTION_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_PII", json.dumps(connection))
    environment = _own_environment()
    week = date(2024, 1, 29)
    ok, states = _run(dagbag.dags["ingest_and_build"], week)
    assert ok, states
    assert _own_environment() == environment, "the jobs' environment (actor, PII key) stayed in the job"
    settings = load_settings()

    # The key came from the connection (silver holds pseudonyms made with it) and went nowhere else:
    # not into a rendered template, the output of the task, or Airflow's log files.
    contact_key = delta_io.read(spark, SILVER_OUTLETS, settings).filter(F.col("outlet_id") == "OUT000003").first()
    assert contact_key is not None
    assert contact_key["contact_key"] == hmac_hex(CONNECTION_SECRET.encode(), "owner00001@example.com")
    rendered = _rendered_fields("ingest_and_build")
    assert week.isoformat() in rendered["build"], "the build task's rendered fields were stored"
    captured = capfd.readouterr()
    assert "silver weeks" in captured.out + captured.err, "the task output was captured"
    logs = [p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log")]
    for text in (*rendered.values(), captured.out, captured.err, *logs):
        assert CONNECTION_SECRET not in text
    silver = delta_io.read(spark, SILVER_SALES, settings)
    assert {r.week_start for r in silver.select("week_start").distinct().collect()} == {week}
    assert silver.count() == 20 * 3
    gold = delta_io.read(spark, GOLD_FEATURES, settings).filter(F.col("week_start") == F.lit(week))
    assert gold.count() == 20 * 3
    assert gold.filter(F.col("units_lag_1").isNull()).count() == 20 * 3  # week 3 alone: lags not built yet
    assert week - timedelta(weeks=1) not in {r.week_start for r in gold.select("week_start").distinct().collect()}

    # The run again (what a backfill with --reprocess-behavior completed does): every table keeps its version.
    tables = (BRONZE_SALES, SILVER_OUTLETS, SILVER_SALES, QUARANTINE, CONSERVATION, GOLD_SALES_WEEKLY, GOLD_FEATURES)
    versions = {t.name: delta_io.version(spark, t, settings) for t in tables}
    ok, states = _run(dagbag.dags["ingest_and_build"], week)
    assert ok, states
    assert {t.name: delta_io.version(spark, t, settings) for t in tables} == versions


@pytest.mark.slow  # a real S3 server
def test_an_s3a_landing_expands_its_weekly_folders(spark, dagbag, airflow_db, landing, s3, monkeypatch):
    """LAKEHOUSE_LANDING=s3a://...: the DAG's `sales/week=*` is expanded through Hadoop's FileSystem."""
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", IN_PROCESS)
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"landing/{path.relative_to(landing)}")
    monkeypatch.setenv("LAKEHOUSE_LANDING", f"s3a://{BUCKET}/landing")
    week = date(2024, 1, 29)
    ok, states = _run(dagbag.dags["ingest_and_build"], week)
    assert ok, states
    settings = load_settings()
    ledger = delta_io.read(spark, BRONZE_FILES, settings).filter(F.col("kind") == "sales").collect()
    weeks = sorted({r._source_file.split("/sales/")[1].split("/")[0] for r in ledger})
    assert weeks == [f"week={date(2024, 1, 1) + timedelta(weeks=i)}" for i in range(10)]
    assert all(r._source_file.startswith(f"s3a://{BUCKET}/landing/sales/week=") for r in ledger)
    silver = delta_io.read(spark, SILVER_SALES, settings).filter(F.col("week_start") == F.lit(week))
    assert silver.count() == 20 * 3


def _own_environment() -> dict[str, str]:
    """This process's environment but for what Airflow's task runner sets for every task (AIRFLOW_CTX_*, and
    _AIRFLOW_PARSING_CONTEXT_* when it parses the DAG for a task)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CTX_", "_AIRFLOW_PARSING_CONTEXT_"))}


def test_a_failing_task_retries_then_alerts(dagbag, airflow_db, tmp_path, monkeypatch):
    use_home(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("LAKEHOUSE_LANDING", str(tmp_path / "nothing-landed"))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", IN_PROCESS)  # the job's own error, without a spark-submit
    dag = dagbag.dags["ingest_and_build"].partial_subset(["ingest"], include_downstream=False)
    task = dag.get_task("ingest")
    # One retry, with no delay: dag.test waits out real retry delays.
    task.retries, task.retry_delay, task.retry_exponential_backoff = 1, timedelta(0), False
    run = dag.test(logical_date=pendulum.datetime(2024, 2, 12, 6, tz="UTC"))
    ti = next(t for t in run.get_task_instances() if t.task_id == "ingest")
    assert ti.state == "failed" and ti.try_number == 2
    lines = [json.loads(x) for x in (tmp_path / "home" / "alerts.log").read_text().splitlines()]
    assert [(x["dag_id"], x["task_id"]) for x in lines][-1] == ("ingest_and_build", "ingest")
    assert lines[-1]["try_number"] == 2  # dag.test passes no exception to callbacks; a worker does


@pytest.fixture
def trained_home(spark, tmp_path, monkeypatch):
    """A home with 12 synthetic weeks built in-process and a champion (the DAGs then run the next steps)."""

    from lakehouse.io import tracking
    from lakehouse.ml.train_flow import train
    from lakehouse.policy import load_ml_config
    from tests.integration.helpers import build, ingest

    config = {
        "training": {
            "cv_folds": 1,
            "holdout_weeks": 2,
            "min_train_weeks": 4,
            "params": {"xgboost": {"n_estimators": 20}},
        },
        # A 20-tree model on 8 weeks: the DAGs need a champion here, not a good one (with the monotone
        # constraints its holdout bias came out at -0.104, over the default 0.10). The gate has its own tests.
        # Effects estimated on 30 outlets x 12 weeks are noise: promotion on the forecast half alone here
        # (the DAG still runs `effects --promote`; test_effects has the effects half of the gate).
        "gate": {"max_abs_bias": 0.2, "effects_required": False},
    }
    use_home(monkeypatch, tmp_path / "home", config)
    raw = tmp_path / "landing"
    args = ["--outlets", "30", "--products", "4", "--weeks", "12", "--start", "2024-01-01"]
    assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
    settings, ml = load_settings(), load_ml_config()
    ingest(spark, settings, "outlets", raw / "outlets")
    ingest(spark, settings, "products", raw / "products")
    ingest(spark, settings, "sales", *sorted((raw / "sales").glob("week=*")))
    build(spark, settings, date(2024, 1, 1), date(2024, 3, 18))
    tracking.configure(settings, ml.registry.experiment)
    assert train(spark, settings, ml, None, promote=True) == 0
    return settings


@pytest.mark.slow  # spark-submit per task, the production path
def test_score_monitor_and_train_dags_run_end_to_end(spark, dagbag, airflow_db, trained_home, monkeypatch):
    from lakehouse.io.catalog import GOLD_EFFECTS, GOLD_MONITORING, GOLD_RECOMMENDATIONS

    last = date(2024, 3, 18)  # the last week with sales
    ok, states = _run(dagbag.dags["score"], last, mark_success_pattern="built")
    assert ok and states["score"] == "success" and states["lift"] == "success", states
    recommendations = delta_io.read(spark, GOLD_RECOMMENDATIONS, trained_home)
    assert {r.week_start for r in recommendations.select("week_start").distinct().collect()} == {
        last + timedelta(weeks=1)
    }
    # Scored again with the job inside the task's process: the same recommendations, so `score` leaves the
    # week as it was (it writes only a changed result) and the table keeps its version.
    scored_version = delta_io.version(spark, GOLD_RECOMMENDATIONS, trained_home)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", IN_PROCESS)
    ok, states = _run(dagbag.dags["score"], last, mark_success_pattern="built")
    assert ok and states["score"] == "success", states
    assert delta_io.version(spark, GOLD_RECOMMENDATIONS, trained_home) == scored_version
    ok, states = _run(dagbag.dags["monitor"], last, mark_success_pattern="scored")
    assert ok and states["monitor"] == "success", states
    decision = json.loads((trained_home.reports_dir / last.isoformat() / "decision.json").read_text())
    # No retraining asked for a week of the training regime: the trigger is skipped.
    assert decision["retrain"] is False and states["trigger_train"] == "skipped"
    assert delta_io.read(spark, GOLD_MONITORING, trained_home).filter(F.col("week_start") == F.lit(last)).count() > 0
    ok, states = _run(dagbag.dags["train"], last, request_id="req-test")
    assert ok, states  # same data, config and code: the run reuses the champion's training run
    # ... and estimates the effects of that model version from the gold_features version it trained on.
    effects = delta_io.read(spark, GOLD_EFFECTS, trained_home)
    assert {(r.model_version, r.method) for r in effects.select("model_version", "method").distinct().collect()} == {
        ("1", "dml"),
        ("1", "fixed_effects"),
    }


def _make_run_driver():
    """scripts/airflow_run.py, `make run`'s driver, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("airflow_run", DAGS.parent / "scripts" / "airflow_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.world  # `make run`'s driver over five weeks: `make test` runs it, `make test-fast` not
def test_make_runs_weekly_run_after_the_initial_load_builds_only_its_week(spark, airflow_db, landing, monkeypatch):
    """dag.test() writes a run's conf into the DAG's own Params: `make run` passes every param on every run."""
    from airflow.models.dagrun import DagRun

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", IN_PROCESS)
    driver = _make_run_driver()
    dag = driver.load_dags(str(DAGS))["ingest_and_build"]
    first, before, last = date(2024, 1, 1), date(2024, 1, 22), date(2024, 1, 29)
    driver.run_dag(dag, before, "initial load", from_week=str(first))
    settings = load_settings()
    written = (SILVER_SALES, GOLD_FEATURES, CONSERVATION)
    versions = {t.name: delta_io.version(spark, t, settings) for t in written}
    driver.run_dag(dag, last, "weekly run")

    (run,) = [r for r in DagRun.find(dag_id="ingest_and_build") if r.logical_date.date() == date(2024, 2, 5)]
    rendered = json.loads(_rendered_fields("ingest_and_build", run.run_id)["build"])
    assert rendered["application_args"][1:] == ["--from", str(last), "--to", str(last)]
    silver = delta_io.read(spark, SILVER_SALES, settings)
    assert sorted(r.week_start for r in silver.select("week_start").distinct().collect()) == [
        first + timedelta(weeks=i) for i in range(5)
    ]
    # One week built: one new version of each table it writes.
    assert {t.name: delta_io.version(spark, t, settings) for t in written} == {t: v + 1 for t, v in versions.items()}
