"""Training, the registry and scoring against a real `mlflow server`: PostgreSQL as backend store, an
S3-compatible object store (moto_server on 127.0.0.1) for artifacts.

What the SQLite tests cannot show: every call goes over MLflow's REST API, run data and aliases land
in PostgreSQL tables, artifacts (the Spark model too) travel through the server's artifact proxy into
the bucket (only the server holds the S3 credentials), and the champion loads back from
`models:/...@champion` on the server to score a week. No secret (the S3 key, the PII key) ends up in
a run's params or tags or in the server's log.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import closing
from datetime import date, timedelta
from typing import Any

import boto3
import mlflow
import mlflow.spark
import pytest
from pyspark.sql import functions as F

from jobs import sample_data, score
from lakehouse.errors import RegistryError
from lakehouse.io import tracking
from lakehouse.io.catalog import GOLD_FEATURES, GOLD_RECOMMENDATIONS
from lakehouse.ml import modeling, models_flow, registry
from lakehouse.ml.model_inputs import model_input_columns
from lakehouse.ml.train_flow import train
from lakehouse.policy import from_dict
from lakehouse.settings import PII_SECRET_ENV, Settings, load_settings
from tests.conftest import use_home
from tests.integration import servers
from tests.integration.helpers import build, ingest, table, version

pytestmark = pytest.mark.slow  # real servers: see the module docstring

START, WEEKS = date(2024, 1, 1), 16
TARGET = START + timedelta(weeks=WEEKS)
BUCKET, PREFIX = "mlflow-artifacts", "lakehouse"
# The local server accepts any credentials; the secret is distinctive so a leak would be found.
S3_CREDENTIALS = {"aws_access_key_id": "mlflow-server-key", "aws_secret_access_key": "s3-secret-9f8e7d6c5b4a3210"}
FAST = {
    "training": {"cv_folds": 0, "holdout_weeks": 4, "min_train_weeks": 4, "params": {"xgboost": {"n_estimators": 30}}},
    "gate": {"effects_required": False},  # promotion on the forecast half alone (test_effects has the rest)
}
NAME = "transaction_drivers"


@pytest.fixture(scope="module")
def postgres() -> Iterator[servers.Postgres]:
    with servers.postgres(databases=("mlflow",)) as pg:
        yield pg


@pytest.fixture(scope="module")
def artifact_bucket() -> Iterator[Any]:
    """A bucket on a local S3 server; yields a boto3 client for it."""
    with servers.s3_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_CREDENTIALS)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def mlflow_server(
    postgres: servers.Postgres, artifact_bucket: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.MlflowServer]:
    # Not waited for here: it starts while `warehouse` builds the features, which waits for it.
    with _server(postgres, artifact_bucket, tmp_path_factory.mktemp("mlflow-server"), wait=False) as server:
        yield server


def _server(postgres: servers.Postgres, artifact_bucket: Any, workdir, wait: bool = True):
    """`mlflow server` on the PostgreSQL store, proxying artifacts to the bucket (the server holds the key)."""
    s3_env = {
        "MLFLOW_S3_ENDPOINT_URL": artifact_bucket.meta.endpoint_url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
    }
    destination = f"s3://{BUCKET}/{PREFIX}"
    return servers.mlflow_server(postgres.url("mlflow"), destination, workdir, env=s3_env, wait=wait)


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory, mlflow_server: servers.MlflowServer) -> Iterator[Settings]:
    """Gold features built from synthetic deliveries; MLFLOW_TRACKING_URI names the server."""
    root = tmp_path_factory.mktemp("warehouse")
    tracking_before, registry_before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, root / "home")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        mp.setenv("LAKEHOUSE_ACTOR", "ci-tests")
        settings = load_settings()
        raw = root / "raw"
        args = ["--outlets", "30", "--products", "4", "--weeks", str(WEEKS), "--start", START.isoformat()]
        assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
        assert spark.conf.get("spark.sql.shuffle.partitions") == "2"  # jobs join the session as configured
        ingest(spark, settings, "outlets", raw / "outlets")
        ingest(spark, settings, "products", raw / "products")
        ingest(spark, settings, "sales", *sorted((raw / "sales").glob("week=*")))
        build(spark, settings, START, START + timedelta(weeks=WEEKS - 1))
        mlflow_server.wait_until_ready()
        try:
            yield settings
        finally:
            if mlflow.active_run() is not None:
                mlflow.end_run("FAILED")
            # tracking.configure set process-wide URIs; later modules must not talk to a stopped server.
            mlflow.set_tracking_uri(tracking_before)
            mlflow.set_registry_uri(registry_before)


def _champion_in_postgres(pg: servers.Postgres) -> list[tuple[str, int]]:
    """The champion alias as the server stored it, read from PostgreSQL directly."""
    with closing(pg.connect("mlflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'")
        return cur.fetchall()


def test_train_promote_score_and_rollback_through_an_mlflow_server_on_postgresql_and_s3(
    spark,
    warehouse: Settings,
    postgres: servers.Postgres,
    mlflow_server: servers.MlflowServer,
    artifact_bucket: Any,
    capsys,
):
    settings, config = warehouse, from_dict(FAST)
    tracking.configure(settings, config.registry.experiment)
    assert mlflow.get_tracking_uri() == mlflow_server.url
    features_version = version(spark, settings, GOLD_FEATURES)

    # First model: registered, gated against the baselines only, promoted.
    assert train(spark, settings, config, None, promote=True) == 0
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(NAME, registry.CHAMPION)
    assert champion.version == "1", champion.tags
    assert champion.tags["gate.passed"] == "true"
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server, not a local path
    assert run.data.tags[f"lineage.{GOLD_FEATURES.name}.version"] == str(features_version)
    assert run.data.tags[f"lineage.{GOLD_FEATURES.name}.path"] == GOLD_FEATURES.path(settings)
    assert run.data.params["training.params.xgboost.n_estimators"] == "30"
    assert run.data.params["training.holdout_weeks"] == "4"
    assert {"holdout_wape", "holdout_bias", "baseline_last_week_wape"} <= set(run.data.metrics)
    assert {"config.json", "gate.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    stored = [o["Key"] for o in artifact_bucket.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]]
    assert any(k.endswith("/MLmodel") for k in stored), "the model went through the proxy into the bucket"
    assert any(k.endswith("/gate.json") for k in stored)

    # The backend store really is PostgreSQL: the alias and the run's lineage tag are rows there.
    assert _champion_in_postgres(postgres) == [(NAME, 1)]
    with closing(postgres.connect("mlflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT value FROM tags WHERE run_uuid = %s AND key = %s",
            (run.info.run_id, f"lineage.{GOLD_FEATURES.name}.version"),
        )
        assert cur.fetchall() == [(str(features_version),)]

    # The champion loads back from the server's registry and scores gold rows.
    model = mlflow.spark.load_model(f"models:/{NAME}@{registry.CHAMPION}")
    rows = table(spark, settings, GOLD_FEATURES).select(*model_input_columns()).limit(5)
    scored = [r[modeling.PREDICTION] for r in modeling.predict(model, rows).collect()]
    assert len(scored) == 5 and all(p is not None and math.isfinite(p) and p >= 0 for p in scored), scored

    # Second model, not promoted by training; promoted by hand (forced when the gate failed it).
    assert train(spark, settings, config, None, promote=False) == 0
    assert registry.alias_version(NAME, registry.CHALLENGER) == "2"
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
    # Without force, the finished run with the same train key is found by a tag search on the server.
    capsys.readouterr()
    assert train(spark, settings, config, None, promote=False, force=False) == 0
    assert "already trained" in capsys.readouterr().out
    assert len(client.search_model_versions(f"name='{NAME}'")) == 2
    passed = client.get_model_version(NAME, "2").tags["gate.passed"] == "true"
    if not passed:  # same data and config: usually no 1% improvement over the champion
        with pytest.raises(RegistryError, match="use --force"):
            models_flow.promote(spark, settings, NAME, "2", "not without force", force=False)
    promoted = models_flow.promote(spark, settings, NAME, "2", "integration test", force=not passed)
    assert promoted == {"model": NAME, "champion": "2", "previous": "1", "forced": not passed}
    assert _champion_in_postgres(postgres) == [(NAME, 2)]

    assert models_flow.rollback(spark, settings, NAME, "back to the first") == {
        "model": NAME,
        "champion": "1",
        "previous": "2",
    }
    assert client.get_model_version_by_alias(NAME, registry.CHAMPION).version == "1"
    assert _champion_in_postgres(postgres) == [(NAME, 1)]
    listed = {v["version"]: v["aliases"] for v in models_flow.list_versions(NAME)}
    assert listed == {"2": ["challenger"], "1": ["champion"]}
    assert client.get_model_version(NAME, "1").tags["champion.rollback_reason"] == "back to the first"

    # The champion, loaded from the server, scores a week: every recommendation carries its version.
    assert score.main(["--week", TARGET.isoformat(), "--top", "0"]) == 0
    recommended = table(spark, settings, GOLD_RECOMMENDATIONS).filter(F.col("week_start") == F.lit(TARGET))
    assert recommended.count() > 0
    assert {r.model_version for r in recommended.select("model_version").distinct().collect()} == {"1"}

    # No secret in what MLflow keeps or logs: params and tags of every run and model version, the server log.
    secrets = (S3_CREDENTIALS["aws_secret_access_key"], os.environ[PII_SECRET_ENV])
    kept = [json.dumps([r.data.params, r.data.tags]) for r in client.search_runs([run.info.experiment_id])]
    kept += [json.dumps(v.tags) for v in client.search_model_versions(f"name='{NAME}'")]
    assert len(kept) >= 4
    for text in (*kept, mlflow_server.log.read_text(errors="replace")):
        assert not any(secret in text for secret in secrets)


def test_a_tracking_server_down_during_train_gives_a_clear_error_and_the_next_train_completes(
    spark, warehouse: Settings, postgres, mlflow_server: servers.MlflowServer, artifact_bucket, tmp_path, monkeypatch
):
    """Last in the module: it stops the module's server. `lakehouse train` runs as a process; the server is
    killed once training has started (the run open on it). The client retries (bounded here to two, with
    a short backoff) and the command exits 4 with one line saying so, no traceback. Nothing half-done is
    left in the registry: the next train, against the server started again on the same stores, registers
    and promotes, and every alias has its audit row."""
    import signal
    import subprocess
    import sys

    import yaml

    from lakehouse.io.catalog import MODEL_AUDIT
    from lakehouse.settings import REPO_ROOT

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    versions_before = len(client.search_model_versions(f"name='{NAME}'"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(FAST))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LAKEHOUSE_CONFIG": str(config),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }
    trainer = subprocess.Popen(
        [sys.executable, "-u", "-m", "lakehouse.cli.main", "train", "--force"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert trainer.stdout is not None
    for line in trainer.stdout:
        lines.append(line)
        if "training xgboost on" in line:
            os.killpg(mlflow_server.proc.pid, signal.SIGKILL)
            break
    output = "".join(lines) + trainer.stdout.read()
    assert trainer.wait(timeout=600) == 4, output[-4000:]
    assert "lakehouse train: error: the MLflow tracking server did not answer" in output, output[-4000:]
    assert "Traceback" not in output, output[-4000:]

    with _server(postgres, artifact_bucket, tmp_path / "server-again") as again:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", again.url)
        settings, config = load_settings(), from_dict(FAST)
        tracking.configure(settings, config.registry.experiment)
        assert train(spark, settings, config, None, promote=True, force=True) == 0
        client = mlflow.MlflowClient(tracking_uri=again.url, registry_uri=again.url)
        versions = client.search_model_versions(f"name='{NAME}'")
        assert len(versions) == versions_before + 1, "the killed train registered nothing"
        assert all(v.status == "READY" for v in versions)
        last = {}
        for row in registry.history(spark, settings, NAME).collect():
            last[row["alias"]] = row["to_version"]
        aliases = client.get_registered_model(NAME).aliases
        assert {alias: str(v) for alias, v in aliases.items()} == last, "every alias is its last audited change"
        assert table(spark, settings, MODEL_AUDIT).count() > 0
