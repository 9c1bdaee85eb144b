"""Reading Delta without Spark (lakehouse.io.delta_log): the same facts and rows as Spark, and no JVM.

The quick commands run in a subprocess that reports whether pyspark was imported; what they print is
compared with what Spark reads from the same tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.score import print_top
from lakehouse.io import delta_io, delta_log
from lakehouse.io.catalog import BRONZE_FILES, GOLD_RECOMMENDATIONS, SILVER_SALES, TABLES
from lakehouse.ml import registry
from lakehouse.ml.models_flow import HISTORY_COLUMNS
from lakehouse.policy import load_ml_config
from lakehouse.settings import Settings, load_settings
from tests.conftest import BUCKET, KEY, SECRET, use_home, write_csv
from tests.integration.helpers import build, ingest, ingest_references

# Runs the CLI as the `lakehouse` command does and says on stderr's last line which of pyspark and the Spark
# session module it loaded.
RUNNER = (
    "import sys; from lakehouse.cli.main import exit_now, main; rc = main(sys.argv[1:]); "
    "print('loaded:', 'pyspark' in sys.modules, 'lakehouse.io.spark' in sys.modules, file=sys.stderr); exit_now(rc)"
)


def lakehouse(*args: str) -> tuple[str, list[str]]:
    """stdout of `lakehouse ARGS` run in a fresh interpreter, and which of (pyspark, lakehouse.io.spark) it loaded."""
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr.strip().splitlines()[-1].split()[1:]


@pytest.fixture(scope="module")
def home(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Two built weeks, a quarantined row and a rejected file (built once: the tests only read it)."""
    root = tmp_path_factory.mktemp("delta_log")
    with pytest.MonkeyPatch.context() as env:
        settings = use_home(env, root / "home")  # the subprocesses read it too
        outlets = [
            ["O1", "retail", "north", 10.1],
            ["O2", "foodservice", "south", 10.5],
            ["O3", "digital", "east", 9.9],
        ]
        write_csv(root / "outlets", "outlets.csv", outlets, header=["outlet_id", "channel", "region", "income"])
        products = [[f"P{i}", f"Brand{i}", f"Maker{i}", "juice", 64] for i in (1, 2, 3)]
        header = ["product_id", "brand", "manufacturer", "category", "pack_size"]
        write_csv(root / "products", "products.csv", products, header=header)
        ingest_references(spark, settings, {"outlets": root / "outlets", "products": root / "products"})
        rows = [
            ["O1", "P1", "2024-01-01", 5, 2.5, 1, 0, 0],
            ["O2", "P2", "2024-01-02", -3, 1.5, 0, 1, 0],
            ["O3", "P3", "2024-01-09", 7, 3.0, 0, 0, 1],
        ]
        folder = write_csv(root / "sales", "sales.csv", rows).parent
        (folder / "empty.csv").write_bytes(b"")
        ingest(spark, settings, "sales", folder)
        build(spark, settings, date(2024, 1, 1), date(2024, 1, 14))
        yield settings


def test_describe_gives_what_spark_gives(spark, home):
    for table in TABLES:  # written ones (several versions of silver and gold) and never-written ones
        assert delta_log.describe(table, home) == delta_io.describe(spark, table, home), table.name


def assert_versions_are_historys(spark: SparkSession, settings: Settings) -> None:
    """`delta_io.version` (asked of the JVM's Delta log) is the last version `history` shows; unwritten: an error."""
    for table in TABLES:
        shown = delta_io.describe(spark, table, settings)["version"]
        if shown is None:
            with pytest.raises(FileNotFoundError, match=table.name):
                delta_io.version(spark, table, settings)
        else:
            assert delta_io.version(spark, table, settings) == shown, table.name


def test_version_is_the_last_one_history_shows(spark, home):
    assert_versions_are_historys(spark, home)


def test_tables_runs_without_pyspark(spark, home):
    out, loaded = lakehouse("tables", "--json")
    assert loaded == ["False", "False"]
    expected = [delta_io.describe(spark, t, home) for t in TABLES]
    assert json.loads(out) == json.loads(json.dumps(expected, default=str))


def test_quarantine_prints_rows_by_reason_and_rejected_files(spark, home):
    rejected = delta_io.read(spark, BRONZE_FILES, home).filter(F.col("status") == "rejected").collect()
    assert len(rejected) == 1
    text, loaded = lakehouse("quarantine")
    assert loaded == ["False", "False"]
    assert text.splitlines() == [
        f"{'table':<22}{'reason':<22}{'rows':>10}",
        f"{'silver_sales':<22}{'negative_units':<22}{1:>10}",
        f"rejected sales file {rejected[0]['_source_file']}: {rejected[0]['error']}",
    ]
    assert json.loads(lakehouse("quarantine", "--json")[0]) == {
        "rows": [{"table": "silver_sales", "reason": "negative_units", "rows": 1}],
        "rejected_files": [{"kind": "sales", "file": rejected[0]["_source_file"], "error": rejected[0]["error"]}],
    }


def _recommendations(spark: SparkSession, settings: Settings) -> None:
    """Two scored weeks with ties in net lift, a missing margin and percent, a holdout row (the printed columns)."""
    rows = [
        (
            "O1",
            "P1",
            date(2024, 1, 8),
            "B1",
            "deal",
            4.0,
            10.0,
            3.0,
            1.25,
            "unit cost",
            "deal at 1.80 (...)",
            "feature",
        ),
        ("O2", "P1", date(2024, 1, 8), "B1", "price_-10%", 4.0, None, 3.0, None, "unit cost", None, None),
        ("O1", "P2", date(2024, 1, 8), "B2", "as_planned", 0.0, 0.0, 0.0, 0.0, "unit cost", None, None),
        ("O3", "P3", date(2024, 1, 8), None, "display", 0.5, 1.0, 0.2, -0.5, "assumed 30% margin", None, None),
        ("O1", "P1", date(2024, 1, 1), "B1", "deal", 99.0, 50.0, 80.0, 3.0, "unit cost", None, None),
    ]
    schema = (
        "outlet_id string, product_id string, week_start date, brand string, action string, lift_units double, "
        "lift_pct double, net_lift_units double, incremental_margin double, margin_basis string, explanation string, "
        "runner_up string"
    )
    df = (
        spark.createDataFrame(rows, schema)
        .withColumn("unit_price", F.lit(1.8))
        .withColumn("price_change", F.lit(-0.1))
        .withColumn("lift_pct_low", F.col("lift_pct") - 5)
        .withColumn("lift_pct_high", F.col("lift_pct") + 5)
        .withColumn("net_lift_units_low", F.col("net_lift_units") - 1)
        .withColumn("net_lift_units_high", F.col("net_lift_units") + 1)
        .withColumn("runner_up_reason", F.when(F.col("runner_up").isNotNull(), F.lit("net lift 1.0, below 3.0")))
    )
    delta_io.overwrite(df, GOLD_RECOMMENDATIONS, settings)


@pytest.mark.parametrize("args", [(), ("--top", "2"), ("--week", "2024-01-03")])
def test_recommendations_print_what_score_prints(spark, settings, capsys, args):
    _recommendations(spark, settings)
    out, loaded = lakehouse("recommendations", *args)
    assert loaded == ["False", "False"]
    week = date(2024, 1, 1) if "--week" in args else date(2024, 1, 8)
    top = int(args[1]) if "--top" in args else 10
    week_df = delta_io.read(spark, GOLD_RECOMMENDATIONS, settings).filter(F.col("week_start") == F.lit(week))
    recommended = week_df.filter(F.col("action") != "as_planned").count()
    print(f"week {week}: {recommended} of {week_df.count()} outlet x product pairs have an action; top {top}:")
    print_top(week_df, top)
    assert out == capsys.readouterr().out


def test_model_history_reads_as_spark_does(spark, settings):
    name = load_ml_config().registry.model_name
    times = [datetime(2024, 3, 1, 12, 0, 0, 500, tzinfo=UTC), datetime(2024, 3, 1, 12, 0, 0, 20, tzinfo=UTC)]
    events = [
        registry.Event(name, "champion", "promote", None, "1", "first", gate_passed=True, gate_metrics={"wape": 0.2}),
        registry.Event(name, "champion", "promote", "1", "2", "second", forced=True),
        registry.Event("other", "champion", "promote", None, "1", "another model"),
    ]
    for event, at in zip(events, [*times, times[0]], strict=True):
        registry._append_event(spark, settings, event, at)
    expected = [r.asDict() for r in registry.history(spark, settings, name).collect()]
    assert [e["reason"] for e in expected] == ["second", "first"]  # by event time, microseconds included
    assert registry.history_records(settings, name) == expected
    assert registry.history_records(settings, "nobody") == []
    out, loaded = lakehouse("models", "history", "--json")
    assert loaded[1] == "False"  # no Spark session (mlflow itself imports pyspark when it is installed)
    printed = [{c: e[c] for c in HISTORY_COLUMNS} for e in expected]
    assert json.loads(out) == json.loads(json.dumps(printed, default=str))


@pytest.mark.slow  # a local S3 server, as in test_s3
def test_describe_on_an_s3a_warehouse(spark, s3, s3_endpoint, tmp_path, monkeypatch, reference_deliveries):
    # delta-rs and boto3 take the endpoint, region and credentials from the environment, as S3A is given them.
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_WAREHOUSE": f"s3a://{BUCKET}/warehouse",
    }
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    ingest_references(spark, settings, reference_deliveries)
    sales = write_csv(tmp_path / "raw", "s.csv", [["O1", "P1", "2024-01-02", 5, 2.5, 0, 0, 0]])
    ingest(spark, settings, "sales", sales.parent)
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1))
    for table in TABLES:
        assert delta_log.describe(table, settings) == delta_io.describe(spark, table, settings), table.name
    assert_versions_are_historys(spark, settings)
    assert delta_log.read_arrow(SILVER_SALES, settings, columns=["outlet_id"]).to_pylist() == [{"outlet_id": "O1"}]
