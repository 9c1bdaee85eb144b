"""Train and gate, whenever gold features change (the Asset) or monitoring asks (run conf); then estimate
the causal effects of price and promotions from the same gold_features version (`effects`), which
completes the gate (signs, stability against the champion's effects) and promotes a version that passed.

A run triggered by `monitor` carries the retraining request in its conf (`request_id`), which lands on
the MLflow run's tags. Training on features, config and code it has already trained on reuses that run.
"""

from airflow.sdk import DAG, Param

from lakehouse.orchestration import DEFAULT_ARGS, GOLD_FEATURES, START, SparkJob

with DAG(
    dag_id="train",
    schedule=[GOLD_FEATURES],
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"request_id": Param("", type="string", description="retraining request that asked for this run")},
    doc_md=__doc__,
    tags=["lakehouse", "ml"],
):
    train = SparkJob(
        task_id="train", module="jobs.train", args=["--request-id", "{{ params.request_id }}", "--no-promote"]
    )
    effects = SparkJob(task_id="effects", module="jobs.effects", args=["--promote"])
    train >> effects
