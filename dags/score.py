"""Weekly, once the week is built: recommend actions for the next week with @champion, and measure the
lift of the week that just landed if it was scored.

Waits for `ingest_and_build` of the same week. Scoring the next week (the end of the run's interval)
updates the gold_recommendations Asset; `lift` is skipped quietly for a week that was never scored.
"""

# Airflow parses only files that mention both "airflow" and "dag" (DagBag safe mode); this line does.
from lakehouse.orchestration import GOLD_RECOMMENDATIONS, NEXT_WEEK, WEEK, SparkJob, waits_for, weekly_dag

with weekly_dag("score", __doc__):
    built = waits_for("built", "ingest_and_build", "build")
    score = SparkJob(
        task_id="score", module="jobs.score", args=["--week", NEXT_WEEK, "--top", "0"], outlets=[GOLD_RECOMMENDATIONS]
    )
    lift = SparkJob(task_id="lift", module="jobs.measure_lift", args=["--week", WEEK, "--if-scored"])
    built >> score >> lift
