"""Cluster mode for real: the same commands on a Spark standalone cluster (a master and two workers on
127.0.0.1) and on local[2] give the same gold tables and recommendations.

The master is only configuration (LAKEHOUSE_SPARK_MASTER): each side runs `lakehouse ingest`, `build`,
`train` (with promotion) and `score` in one process, so one Spark application per side. The cluster side
is a new process; the local side runs the jobs in the test's own process and session, as `make run` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pytest
import yaml
from pyspark.sql import SparkSession

from jobs import sample_data
from lakehouse.cli.main import COMMANDS
from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_FEATURES, GOLD_RECOMMENDATIONS, GOLD_SALES_WEEKLY, SILVER_SALES, Table
from lakehouse.io.spark_jobs import run_job
from lakehouse.settings import REPO_ROOT, Settings, load_settings
from tests.integration.helpers import assert_same_content
from tests.integration.spark_cluster import SparkCluster, spark_standalone

pytestmark = pytest.mark.slow

START, WEEKS = date(2024, 1, 1), 12
TARGET = START + timedelta(weeks=WEEKS)
FAST = {
    "training": {"cv_folds": 0, "holdout_weeks": 3, "min_train_weeks": 4, "params": {"xgboost": {"n_estimators": 30}}},
    "gate": {"effects_required": False},  # promotion on the forecast half alone (test_effects has the rest)
}
# Per delivery and per run: which batch and when, not what (`inputs` includes the model's run id).
RUN_COLUMNS = ("_batch_id", "_ingested_at", "_source_file", "model_run_id", "inputs", "scored_at", "_built_at")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with spark_standalone(tmp_path_factory.mktemp("spark-cluster"), workers=2, cores=1, memory="2g") as running:
        yield running


@pytest.fixture(scope="module")
def deliveries(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("deliveries")
    args = ["--outlets", "24", "--products", "3", "--weeks", str(WEEKS), "--start", START.isoformat()]
    assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
    return raw


def _commands(deliveries: Path) -> list[list[str]]:
    """Ingest, build, train (and promote) and score TARGET."""
    return [
        ["ingest", "--landing", str(deliveries)],
        ["build", "--from", START.isoformat(), "--to", (TARGET - timedelta(days=1)).isoformat()],
        ["train"],
        ["score", "--week", TARGET.isoformat(), "--top", "0"],
    ]


def _env(home: Path, master: str) -> dict[str, str]:
    """A fresh home with fast training settings, on `master`."""
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(yaml.safe_dump(FAST))
    return {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_CONFIG": str(home / "config.yaml"),
        "LAKEHOUSE_SPARK_MASTER": master,
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
    }


def _on_cluster(home: Path, master: str, deliveries: Path) -> Settings:
    """The commands one after the other in a new process (one Spark application of the cluster)."""
    runner = "\n".join(
        [
            "import json, sys",
            "from lakehouse.cli.main import main",
            "for argv in sys.argv[1:]:",
            "    main(json.loads(argv)) == 0 or sys.exit(1)",
        ]
    )
    env = _env(home, master)
    argv = [json.dumps(c) for c in _commands(deliveries)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LAKEHOUSE_DRIVER_MEMORY": "1g", **env}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", runner, *argv], env=full_env, capture_output=True, text=True)
    assert done.returncode == 0, f"lakehouse commands failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return load_settings(env)


def _in_process(home: Path, deliveries: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The same commands as jobs in this process, on the tests' local[2] session, as `make run` runs them."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = _env(home, "local[2]")
    for command, *argv in _commands(deliveries):
        assert run_job(COMMANDS[command], argv, env) == 0, command
    return load_settings(env)


def _table(spark: SparkSession, settings: Settings, table: Table):
    df = delta_io.read(spark, table, settings)
    return df.drop(*[c for c in RUN_COLUMNS if c in df.columns])


def _applications(cluster: SparkCluster) -> list[dict]:
    with urllib.request.urlopen(f"{cluster.ui_url}/json/", timeout=5) as response:
        state = json.load(response)
    return state.get("activeapps", []) + state.get("completedapps", [])


def _spark_master_tag(settings: Settings) -> str:
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    (run,) = client.search_runs(client.get_experiment_by_name("transaction_drivers").experiment_id)
    return run.data.tags["spark_master"]


def test_a_standalone_cluster_gives_the_same_gold_tables_and_recommendations(
    spark, cluster, deliveries, tmp_path, monkeypatch
):
    on_cluster = _on_cluster(tmp_path / "cluster", cluster.master_url, deliveries)
    apps = _applications(cluster)
    assert apps and all(a["cores"] >= 1 for a in apps), "the commands ran as an application of the cluster"
    assert _spark_master_tag(on_cluster) == cluster.master_url

    local = _in_process(tmp_path / "local", deliveries, monkeypatch)
    assert _spark_master_tag(local) == "local[2]"
    assert len(_applications(cluster)) == len(apps), "the local run did not use the cluster"

    for table in (SILVER_SALES, GOLD_SALES_WEEKLY, GOLD_FEATURES, GOLD_RECOMMENDATIONS):
        cluster_df, local_df = _table(spark, on_cluster, table), _table(spark, local, table)
        assert cluster_df.count() > 0, table.name
        assert_same_content(cluster_df, local_df)
