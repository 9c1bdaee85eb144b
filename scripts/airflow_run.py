"""`make run`: the whole loop through Airflow on embedded defaults, over every week that has landed.

Each step is a real run of one of the DAGs in dags/, made with `dag.test()`: Airflow renders, runs and
records every task (spark-submit jobs included) in the SQLite metadata database of $AIRFLOW_HOME, with no
scheduler to start. The steps come in the order the weekly schedule would run them:

1. ingest_and_build, initial load: every delivery, and every week up to the one before the last;
2. ingest_and_build for the last week, as a weekly run;
3. train: train, gate and promote (in production the gold_features Asset starts it), then estimate the
   causal effects of price and promotions (printed at the end, double ML beside fixed effects);
4. score for the week before the last, then for the last week: each scores the week after its own, and
   the second measures the lift of the last week, which the first scored;
5. monitor the last week: Evidently reports, data health and the retraining decision. A request
   triggers `train` with the request in its conf, and that run follows here.

Every run has a fixed logical date, so a second `make run` re-runs the same runs and, the jobs being
idempotent, changes nothing. Needs scripts/airflow-env.sh sourced (the Makefile does it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's airflow and lakehouse commands
STARTED = time.monotonic()
TERMINAL = sys.stdout  # until quiet() sends this process's output to the log file


def say(message: str) -> None:
    """A progress line on the terminal."""
    print(f"[make run {time.monotonic() - STARTED:5.0f}s] {message}", file=TERMINAL, flush=True)


def fail(message: str) -> NoReturn:
    print(f"make run: {message}", file=TERMINAL, flush=True)
    raise SystemExit(1)


def quiet(log: Path) -> None:
    """From here on, Airflow's logs and the jobs' output (this process's stdout and stderr) go to `log`."""
    global TERMINAL
    sys.stdout.flush()
    sys.stderr.flush()
    TERMINAL = os.fdopen(os.dup(1), "w")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def landed_weeks(folder: Path) -> tuple[date, date]:
    """The first and last weeks with a sales delivery (`sales/week=YYYY-MM-DD`)."""
    days = sorted(date.fromisoformat(p.name.removeprefix("week=")) for p in (folder / "sales").glob("week=*"))
    if not days:
        fail(f"no sales deliveries under {folder}/sales: run `make data` (or set LAKEHOUSE_LANDING)")
    return days[0] - timedelta(days=days[0].weekday()), days[-1] - timedelta(days=days[-1].weekday())


def migrate(log: Path) -> None:
    if subprocess.run([str(BIN / "airflow"), "db", "migrate"]).returncode:
        fail(f"`airflow db migrate` failed, see {log}")


def _task_done(context: dict[str, Any]) -> None:
    ti = context["ti"]
    took = "" if ti.start_date is None else f" in {(datetime.now(UTC) - ti.start_date).total_seconds():.0f}s"
    say(f"  {ti.dag_id}.{ti.task_id}: {getattr(ti.state, 'value', ti.state)}{took}")


def _report_progress(dag: Any) -> None:
    """Print a line as each task ends (the alert callback on failure stays)."""
    for task in dag.tasks:
        task.on_success_callback = [_task_done]
        failure = task.on_failure_callback
        task.on_failure_callback = [
            *(failure if isinstance(failure, list) else [failure] if failure else []),
            _task_done,
        ]


# Every DAG's declared param defaults, read before its first run: dag.test() resolves a run's conf into the
# DAG's own Param objects (Airflow 3.1's process_params), so without passing every param on every run, one
# run's conf (the initial load's `from_week`) would become the next run's default.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {}


def load_dags(folder: str) -> dict[str, Any]:
    """The DAGs of `folder`, each reporting its tasks as they end, with their param defaults recorded."""
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=folder, include_examples=False)
    if bag.import_errors:
        fail(f"the DAGs do not load: {bag.import_errors}")
    for dag in bag.dags.values():
        _report_progress(dag)
        DEFAULT_PARAMS[dag.dag_id] = dag.params.dump()
    return bag.dags


def run_dag(dag: Any, week: date, what: str, logical_date: datetime | None = None, **conf: Any) -> dict[str, str]:
    """One manual run of `dag` for `week`: its data interval is that week, so its logical date is the
    Monday after (unless given). Stops `make run` on failure, naming the failed tasks and the log."""
    from airflow.utils.state import DagRunState

    say(f"{dag.dag_id} {week}: {what}")
    end = week + timedelta(weeks=1)
    logical_date = logical_date or datetime(end.year, end.month, end.day, 6, tzinfo=UTC)
    run = dag.test(logical_date=logical_date, run_conf={**DEFAULT_PARAMS.get(dag.dag_id, {}), **conf} or None)
    states = {ti.task_id: getattr(ti.state, "value", str(ti.state)) for ti in run.get_task_instances()}
    for task_id, state in states.items():
        if state == "skipped":
            say(f"  {dag.dag_id}.{task_id}: skipped")
    if run.state != DagRunState.SUCCESS:
        failed = [t for t, s in states.items() if s not in ("success", "skipped")]
        log = os.environ.get("LAKEHOUSE_RUN_LOG", "the output above")
        fail(f"{dag.dag_id} {week} failed at {failed}; task logs in {log}")
    return states


def triggered_run(dag_id: str, run_id: str) -> Any:
    """The run another DAG's trigger queued (a scheduler would start it; `make run` runs it next)."""
    from airflow.models.dagrun import DagRun

    runs = DagRun.find(dag_id=dag_id, run_id=run_id)
    if not runs:
        fail(f"the {dag_id} run {run_id} that monitor triggered is not in the metadata database")
    return runs[0]


def summary(settings: Any, last: date) -> None:
    reports = sorted(settings.reports_dir.glob(f"{last}/*.html"))
    say("done. Where things are:")
    print(
        f"  Delta tables       {settings.warehouse}  (list them: .venv/bin/lakehouse tables)\n"
        f"  Airflow runs       {os.environ['AIRFLOW_HOME']}  (make up: Airflow UI on http://127.0.0.1:8080)\n"
        f"  MLflow             {settings.mlflow_dir}  (make up, or: .venv/bin/mlflow ui --backend-store-uri "
        f"sqlite:///{settings.mlflow_dir / 'mlflow.db'})\n"
        f"  Evidently reports  {reports[0].parent if reports else 'none'}"
        f"  ({', '.join(p.name for p in reports)})\n"
        f"  decision           {settings.reports_dir / str(last) / 'decision.json'}\n"
        f"  task logs          {os.environ['LAKEHOUSE_RUN_LOG']}",
        file=TERMINAL,
        flush=True,
    )
    subprocess.run([str(BIN / "lakehouse"), "effects", "--show"], stdout=TERMINAL, check=True)
    subprocess.run([str(BIN / "lakehouse"), "backtest", "--show"], stdout=TERMINAL, check=True)
    subprocess.run([str(BIN / "lakehouse"), "recommendations"], stdout=TERMINAL, check=True)


def main() -> int:
    home = Path(os.environ["LAKEHOUSE_HOME"])
    log = home / "make-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.environ["LAKEHOUSE_RUN_LOG"] = str(log)
    quiet(log)  # before importing Airflow, which logs as it loads
    sys.path.insert(0, str(REPO))  # the DAGs import lakehouse.orchestration
    from lakehouse.monitoring.decisions import stored_decision
    from lakehouse.orchestration import create_pools, landing
    from lakehouse.settings import load_settings

    settings = load_settings()
    first, last = landed_weeks(Path(landing()))
    say(f"weeks {first}..{last} landed under {landing()}; Airflow home {os.environ['AIRFLOW_HOME']}")
    migrate(log)
    create_pools()

    dags = load_dags(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    before = last - timedelta(weeks=1)
    run_dag(dags["ingest_and_build"], before, f"initial load, weeks {first}..{before}", from_week=str(first))
    run_dag(dags["ingest_and_build"], last, "weekly run")
    run_dag(dags["train"], last, "train, gate, promote")
    run_dag(dags["score"], before, f"score {last}")
    run_dag(dags["score"], last, f"score {last + timedelta(weeks=1)}, lift of {last}")
    states = run_dag(dags["monitor"], last, "reports, data health, retraining decision")
    decision = stored_decision(settings, last)
    if states["trigger_train"] == "success":
        queued = triggered_run("train", f"retrain__{decision['request_id']}")
        what = f"the run monitor triggered for request {decision['request_id']} ({', '.join(decision['causes'])})"
        run_dag(dags["train"], last, what, logical_date=queued.logical_date, **queued.conf)
    summary(settings, last)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except Exception as exc:  # the traceback is in the log; the terminal gets the gist
        import traceback

        traceback.print_exc()
        fail(f"{type(exc).__name__}: {exc}; details in {os.environ.get('LAKEHOUSE_RUN_LOG', 'the output above')}")
