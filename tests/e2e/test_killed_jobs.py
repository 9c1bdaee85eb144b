"""Killed mid-write: `kill -9` of a command's process group at several points, then the same command again,
ends where an undisturbed run ends.

Each kill waits for a real point of the command (a commit of one of its tables, or a line it prints), so it
lands between writes that belong together: bronze written but not its ledger, silver but not gold, a model
run started but not registered, a version registered but not gated, a week being scored but not written, its
as-planned rows written but not its recommendations.
After each kill every table reads at its last committed version and every alias of the registry has its
audit row; the command then runs again to the end. At the end bronze holds each delivered row once, and
silver, gold and the recommendations equal an undisturbed run's on the same deliveries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from jobs import sample_data
from lakehouse.cli.main import COMMANDS
from lakehouse.io import delta_io
from lakehouse.io.catalog import (
    BRONZE_FILES,
    BRONZE_SALES,
    GOLD_FEATURES,
    GOLD_PLANNED_FEATURES,
    GOLD_RECOMMENDATIONS,
    GOLD_SALES_WEEKLY,
    MODEL_AUDIT,
    SILVER_SALES,
    TABLES,
    Table,
)
from lakehouse.io.spark_jobs import run_job
from lakehouse.ml import registry
from lakehouse.settings import REPO_ROOT, Settings, load_settings
from tests.integration.helpers import assert_same_content

pytestmark = pytest.mark.slow

START, WEEKS = date(2024, 1, 1), 12
TARGET = START + timedelta(weeks=WEEKS)
FAST = {
    "training": {"cv_folds": 0, "holdout_weeks": 3, "min_train_weeks": 4, "params": {"xgboost": {"n_estimators": 30}}},
    "gate": {"effects_required": False},
}
RUN_COLUMNS = ("_batch_id", "_ingested_at", "_source_file", "model_run_id", "inputs", "scored_at", "_built_at")
# A killed train registered a version of its own, and killed builds added table versions: the recommendations
# name other version numbers (their candidates' reasons too), for the same rows and predictions.
VERSION_COLUMNS = ("model_version", "features_version", "effects_version", "candidates")
MODEL = "transaction_drivers"
KILL_WITHIN_S = 600  # a command that never reaches its kill point fails the test instead of hanging it


def _commands(deliveries: Path) -> dict[str, list[str]]:
    return {
        "ingest": ["--landing", str(deliveries)],
        "build": ["--from", START.isoformat(), "--to", (TARGET - timedelta(days=1)).isoformat()],
        "train": [],
        "score": ["--week", TARGET.isoformat(), "--top", "0"],
    }


def _commits(settings: Settings, table: Table) -> int:
    log = Path(table.path(settings)) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def committed(table: Table) -> Callable[[Settings, list[str], int], bool] | None:
    """A kill point: the command's next commit of `table`."""

    def reached(settings: Settings, lines: list[str], commits_before: int) -> bool:
        return _commits(settings, table) > commits_before

    reached.table = table  # type: ignore[attr-defined]
    return reached


def printed(text: str) -> Callable[[Settings, list[str], int], bool]:
    """A kill point: the command prints a line holding `text`."""

    def reached(settings: Settings, lines: list[str], commits_before: int) -> bool:
        return any(text in line for line in lines)

    reached.table = None  # type: ignore[attr-defined]
    return reached


# (command, where it is killed): in this order, each kill followed by the same command run to the end.
KILLS = [
    ("ingest", committed(BRONZE_SALES)),  # bronze written, its ledger not yet
    ("build", committed(SILVER_SALES)),  # silver written, quarantine, conservation and gold not yet
    ("build", committed(GOLD_SALES_WEEKLY)),  # silver and weekly facts written, features not yet
    ("train", printed("training xgboost on")),  # an MLflow run started, nothing registered
    ("train", printed("registered")),  # a version registered as @challenger, not yet gated or promoted
    ("score", printed("scoring week")),  # the champion resolved, the week being scored, nothing written
    ("score", committed(GOLD_PLANNED_FEATURES)),  # the week's as-planned rows written, its recommendations not yet
]


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("deliveries")
    args = ["--outlets", "16", "--products", "3", "--weeks", str(WEEKS), "--start", START.isoformat()]
    assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
    return raw


def _env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True)
    (home / "config.yaml").write_text(yaml.safe_dump(FAST))
    return {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_CONFIG": str(home / "config.yaml"),
        "LAKEHOUSE_SPARK_MASTER": "local[2]",
        "LAKEHOUSE_SHUFFLE_PARTITIONS": "2",
    }


def _kill_at(env: dict[str, str], command: str, argv: list[str], reached) -> list[str]:
    """Run `lakehouse <command>` in its own process group and SIGKILL the group at the kill point."""
    settings = load_settings(env)
    before = _commits(settings, reached.table) if reached.table else 0
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LAKEHOUSE_DRIVER_MEMORY": "1g", **env}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "lakehouse.cli.main", command, *argv],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    os.set_blocking(process.stdout.fileno(), False)  # type: ignore[union-attr]
    deadline = time.monotonic() + KILL_WITHIN_S
    try:
        while not reached(settings, lines, before):
            lines += process.stdout.readlines()  # type: ignore[union-attr]
            assert process.poll() is None, f"{command} ended before its kill point:\n" + "".join(lines[-40:])
            assert time.monotonic() < deadline, f"{command} did not reach its kill point in {KILL_WITHIN_S} s"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, f"{command} was not killed:\n" + "".join(lines[-40:])
    return lines


def _in_process(env: dict[str, str], command: str, argv: list[str]) -> None:
    assert run_job(COMMANDS[command], argv, env) == 0, f"{command} {argv} failed"


def _every_table_reads(spark: SparkSession, settings: Settings) -> None:
    for t in TABLES:
        if delta_io.exists(spark, t, settings):
            delta_io.read(spark, t, settings).count()


def _every_alias_is_audited(spark: SparkSession, settings: Settings) -> None:
    """Each alias the registry shows is the last audited change of that alias (no change without its row)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    if not client.search_registered_models(f"name = '{MODEL}'"):
        return
    aliases = client.get_registered_model(MODEL).aliases
    if not delta_io.exists(spark, MODEL_AUDIT, settings):
        assert not aliases, f"aliases {aliases} without any audit row"
        return
    last = {}
    for row in registry.history(spark, settings, MODEL).collect():
        last[row["alias"]] = row["to_version"]
    for alias, version in aliases.items():
        assert last.get(alias) == str(version), (
            f"@{alias} is version {version}, its last audit row says {last.get(alias)}"
        )
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert all(v.status == "READY" for v in versions), "a half-registered version"


def _table(spark: SparkSession, settings: Settings, table: Table):
    df = delta_io.read(spark, table, settings)
    return df.drop(*[c for c in (*RUN_COLUMNS, *VERSION_COLUMNS) if c in df.columns])


def test_a_command_killed_mid_write_and_run_again_ends_as_an_undisturbed_run(spark, deliveries, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    commands = _commands(deliveries)
    undisturbed_env = _env(tmp_path / "undisturbed")
    for command, argv in commands.items():
        _in_process(undisturbed_env, command, argv)

    killed_env = _env(tmp_path / "killed")
    killed = load_settings(killed_env)
    for command, argv in commands.items():
        for kill_command, reached in KILLS:
            if kill_command == command:
                _kill_at(killed_env, command, argv, reached)
                _every_table_reads(spark, killed)
                _every_alias_is_audited(spark, killed)
        _in_process(killed_env, command, argv)
        _every_alias_is_audited(spark, killed)

    undisturbed = load_settings(undisturbed_env)
    bronze = delta_io.read(spark, BRONZE_SALES, killed)
    assert bronze.count() == delta_io.read(spark, BRONZE_SALES, undisturbed).count()
    assert bronze.count() == bronze.dropDuplicates(["_source_file", "outlet_id", "product_id", "sale_date"]).count()
    ledger = delta_io.read(spark, BRONZE_FILES, killed).filter("kind = 'sales'")
    assert ledger.groupBy("_source_file").count().filter("count > 1").count() == 0, "a file ingested twice"
    for table in (SILVER_SALES, GOLD_SALES_WEEKLY, GOLD_FEATURES, GOLD_PLANNED_FEATURES, GOLD_RECOMMENDATIONS):
        assert_same_content(_table(spark, killed, table), _table(spark, undisturbed, table))
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=killed.tracking_uri, registry_uri=killed.tracking_uri)
    aliases = client.get_registered_model(MODEL).aliases
    assert registry.CHAMPION in aliases, "the run after the kills promoted a champion"
