"""Weekly: ingest what landed, then build silver and gold for the run's week.

Deliveries are read from the landing folder (LAKEHOUSE_LANDING, by default the sample data): the ingest
ledger skips every delivery already in bronze, so each run lands only what is new. The build covers the
run's week (its data interval) and the feature weeks that depend on it, and updates the gold_features
Asset, which schedules `train`. A backfill over a range gives the same tables as the weekly runs.

An initial load is one manual run with `from_week` in its conf: it builds every week from that one
through the run's week in a single Spark job (what `make run` does), instead of one run per week.
"""

# Airflow parses only files that mention both "airflow" and "dag" (DagBag safe mode); this line does.
from airflow.sdk import Param

from lakehouse.orchestration import GOLD_FEATURES, WEEK, SparkJob, landing, weekly_dag

FROM_WEEK = "{{ params.from_week or (data_interval_start | ds) }}"

# The landing folder is a macro, so it is read when a task runs, not when the DAG is parsed.
with weekly_dag(
    "ingest_and_build",
    __doc__,
    user_defined_macros={"landing": landing},
    params={"from_week": Param("", type="string", description="initial load: build from this week (YYYY-MM-DD)")},
):
    # One Spark job lands the whole landing folder: outlets and products first (sales are checked against
    # them), then every sales week; the ledger skips deliveries already in bronze.
    ingest = SparkJob(task_id="ingest", module="jobs.ingest", args=["--landing", "{{ landing() }}"])
    build = SparkJob(
        task_id="build", module="jobs.build", args=["--from", FROM_WEEK, "--to", WEEK], outlets=[GOLD_FEATURES]
    )
    ingest >> build
