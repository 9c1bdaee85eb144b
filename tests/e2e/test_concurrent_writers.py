"""Concurrent writers outside Airflow's pool: a CLI backfill of weeks that a scheduled build rebuilds at the same
time. Both processes start together on the same home and rebuild overlapping weeks (`--force`, so both write).
Delta refuses the later of two commits to the same files; the build then builds its weeks again from the
new versions. Each process ends with success, or with a clear refusal (exit 1, no traceback); the tables
then equal one undisturbed build: no lost or doubled rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs import sample_data
from lakehouse.io import delta_io
from lakehouse.io.catalog import CONSERVATION, GOLD_FEATURES, GOLD_SALES_WEEKLY, QUARANTINE, SILVER_SALES, Table
from lakehouse.settings import REPO_ROOT, Settings
from tests.conftest import use_home
from tests.integration.helpers import assert_same_content, build, ingest

pytestmark = pytest.mark.slow

START, WEEKS = date(2024, 1, 1), 10
LAST = START + timedelta(weeks=WEEKS - 1)
BUILT_AT = ("_built_at", "_ingested_at", "_batch_id")
RETRIED = "another job wrote the same tables at the same time"
REFUSED = "another job kept writing the same tables"


def _start(home: Path, *argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_DRIVER_MEMORY": "1g"}
    for var in ("LAKEHOUSE_CONFIG", "LAKEHOUSE_WAREHOUSE", "MLFLOW_TRACKING_URI"):
        env.pop(var, None)
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli.main", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _land(spark, settings: Settings, raw: Path) -> None:
    ingest(spark, settings, "outlets", raw / "outlets")
    ingest(spark, settings, "products", raw / "products")
    ingest(spark, settings, "sales", *sorted((raw / "sales").glob("week=*")))


def _table(spark, settings: Settings, table: Table):
    return delta_io.read(spark, table, settings)


def test_a_backfill_beside_a_build_of_the_same_weeks_loses_and_doubles_nothing(spark, tmp_path, monkeypatch):
    raw = tmp_path / "deliveries"
    args = ["--outlets", "12", "--products", "3", "--weeks", str(WEEKS), "--start", START.isoformat()]
    assert sample_data.main(["synthetic", "--out", str(raw), *args]) == 0
    undisturbed = use_home(monkeypatch, tmp_path / "undisturbed")
    _land(spark, undisturbed, raw)
    build(spark, undisturbed, START, LAST)

    home = tmp_path / "home"
    shared = use_home(monkeypatch, home)
    _land(spark, shared, raw)
    backfill = _start(home, "backfill", "--from", START.isoformat(), "--to", LAST.isoformat(), "--force")
    scheduled = _start(
        home, "build", "--from", (START + timedelta(weeks=2)).isoformat(), "--to", LAST.isoformat(), "--force"
    )
    outcomes = {}
    for name, process in (("backfill", backfill), ("build", scheduled)):
        out, err = process.communicate(timeout=900)
        outcomes[name] = (process.returncode, out + err)
    for name, (code, output) in outcomes.items():
        assert "Traceback" not in output, f"{name} ended with a traceback:\n{output[-3000:]}"
        assert code == 0 or (code == 1 and REFUSED in output), f"{name} exit {code}:\n{output[-3000:]}"
    print({name: (code, RETRIED in output) for name, (code, output) in outcomes.items()})

    if any(code != 0 for code, _ in outcomes.values()):  # what the refusal says to do
        build(spark, shared, START, LAST)
    for table in (SILVER_SALES, GOLD_SALES_WEEKLY, GOLD_FEATURES):
        assert_same_content(_table(spark, shared, table), _table(spark, undisturbed, table), drop=BUILT_AT)
    for table in (QUARANTINE, CONSERVATION):
        got, want = _table(spark, shared, table), _table(spark, undisturbed, table)
        assert got.count() == want.count(), f"{table.name}: {got.count()} rows, an undisturbed build {want.count()}"
    assert _table(spark, shared, CONSERVATION).filter("NOT is_balanced").count() == 0
