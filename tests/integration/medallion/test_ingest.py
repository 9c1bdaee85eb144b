"""Bronze ingest: metadata, idempotency, formats, malformed files and type conflicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse.errors import DeliveryError
from lakehouse.io.catalog import BRONZE_FILES, BRONZE_SALES
from lakehouse.medallion.deliveries import list_delivery, list_local_delivery
from lakehouse.settings import REPO_ROOT
from tests.conftest import write_csv, write_jsonl
from tests.integration.helpers import ingest, table, version

ROWS = [["O1", "P1", "2024-01-01", 5, 2.5, 1, 0, 0], ["O1", "P2", "2024-01-02", 3, 1.5, 0, 1, 0]]


def test_ingest_adds_metadata_and_a_second_ingest_changes_nothing(spark, settings, tmp_path):
    delivery = write_csv(tmp_path / "d1", "sales.csv", ROWS).parent
    [result] = ingest(spark, settings, "sales", delivery)
    assert (result.rows, result.skipped, result.rejected) == (2, False, {})
    bronze = table(spark, settings, BRONZE_SALES)
    row = bronze.filter(F.col("product_id") == "P1").first()
    assert row["units"] == 5.0 and row["on_deal"] is True and row["featured"] is False
    assert row["_batch_id"] == result.batch and row["_source_file"].endswith("/d1/sales.csv")
    assert row["_ingested_at"] is not None and row["_rescued_data"] is None
    versions = (version(spark, settings, BRONZE_SALES), version(spark, settings, BRONZE_FILES))

    [again] = ingest(spark, settings, "sales", delivery)
    assert again.skipped and again.batch == result.batch
    assert (version(spark, settings, BRONZE_SALES), version(spark, settings, BRONZE_FILES)) == versions
    assert table(spark, settings, BRONZE_SALES).count() == 2


def test_csv_jsonl_and_parquet_files_land_in_one_batch(spark, settings, tmp_path):
    folder = tmp_path / "mixed"
    write_csv(folder, "a.csv", ROWS[:1])
    write_jsonl(
        folder,
        "b.jsonl",
        [
            {
                "outlet_id": "O2",
                "product_id": "P1",
                "sale_date": "2024-01-03",
                "units": 4,
                "unit_price": 2.0,
                "on_deal": True,
                "record_id": "r-9",
            }
        ],
    )
    spark.createDataFrame(
        [("O3", "P1", "2024-01-04", 7, 2.25)],
        "outlet_id string, product_id string, sale_date string, units long, unit_price double",
    ).coalesce(1).write.parquet(str(tmp_path / "pq"))
    part = next((tmp_path / "pq").glob("part-*.parquet"))
    part.rename(folder / "c.parquet")
    [result] = ingest(spark, settings, "sales", folder)
    assert result.rows == 3 and not result.rejected
    got = {r["outlet_id"]: r for r in table(spark, settings, BRONZE_SALES).collect()}
    assert got["O2"]["units"] == 4.0 and got["O2"]["on_deal"] is True and got["O2"]["record_id"] == "r-9"
    assert got["O3"]["units"] == 7.0 and str(got["O3"]["sale_date"]) == "2024-01-04"
    assert {r["_batch_id"] for r in got.values()} == {result.batch}


def test_malformed_files_are_recorded_and_never_corrupt_the_table(spark, settings, tmp_path):
    folder = tmp_path / "bad"
    write_csv(folder, "good.csv", ROWS)
    truncated = write_csv(folder, "truncated.csv", [ROWS[0], ["O2", "P1", "2024-01-0"]])
    truncated.write_text(truncated.read_text().rstrip("\n"))
    (folder / "semicolon.csv").write_text("outlet_id;product_id;sale_date;units;unit_price\nO1;P1;2024-01-01;1;2\n")
    (folder / "garbage.csv").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.csv").write_bytes(b"")
    write_csv(folder, "header_only.csv", [])
    (folder / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "notes.txt").write_text("hello")
    [result] = ingest(spark, settings, "sales", folder)

    errors = {path.rsplit("/", 1)[-1]: error for path, error in result.rejected.items()}
    assert set(errors) == {"semicolon.csv", "garbage.csv", "empty.csv", "garbage.parquet", "notes.txt"}
    assert "missing required column(s) outlet_id" in errors["semicolon.csv"] and "delimiter" in errors["semicolon.csv"]
    assert "binary" in errors["garbage.csv"] and "empty file" in errors["empty.csv"]
    assert "unreadable Parquet" in errors["garbage.parquet"] and "unsupported" in errors["notes.txt"]
    ledger = {r["_source_file"].rsplit("/", 1)[-1]: r for r in table(spark, settings, BRONZE_FILES).collect()}
    assert len(ledger) == 8 and ledger["semicolon.csv"]["status"] == "rejected"
    assert ledger["header_only.csv"]["rows"] == 0 and ledger["truncated.csv"]["rows"] == 2
    bronze = table(spark, settings, BRONZE_SALES)
    assert bronze.count() == 4  # good (2) + truncated (2, one of them cut short)
    cut = bronze.filter(F.col("_source_file").endswith("truncated.csv") & (F.col("outlet_id") == "O2")).first()
    assert cut["units"] is None and '"sale_date":"2024-01-0"' in cut["_rescued_data"]


def test_parquet_with_a_conflicting_type_is_refused_and_writes_nothing(spark, settings, tmp_path):
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "sales.csv", ROWS).parent)
    before = (version(spark, settings, BRONZE_SALES), version(spark, settings, BRONZE_FILES))
    folder = tmp_path / "d2"
    spark.createDataFrame(
        [("O1", "P1", "2024-01-08", "five", 2.5)],
        "outlet_id string, product_id string, sale_date string, units string, unit_price double",
    ).coalesce(1).write.parquet(str(folder))
    with pytest.raises(DeliveryError, match=r"delivery .*d2 refused for bronze_sales: column 'units' is string"):
        ingest(spark, settings, "sales", folder)
    assert (version(spark, settings, BRONZE_SALES), version(spark, settings, BRONZE_FILES)) == before


def _parquet(spark, folder: Path, rows: list[tuple], schema: str) -> Path:
    """A one-file Parquet delivery in `folder` (Spark writes it, as a provider's pipeline would)."""
    spark.createDataFrame(rows, schema).coalesce(1).write.parquet(str(folder))
    return folder


def test_a_column_no_contract_names_never_refuses_a_delivery(spark, settings, tmp_path):
    """A provider that changes format: CSV weeks, then JSON Lines weeks adding `coupon_disc` (text in bronze),
    then Parquet weeks where it is a double. Contract columns still refuse a conflicting type (above)."""
    sales = "outlet_id string, product_id string, sale_date string, units long, unit_price double"
    ingest(spark, settings, "sales", write_csv(tmp_path / "w1", "sales.csv", ROWS).parent)
    line = {"outlet_id": "O2", "product_id": "P1", "sale_date": "2024-01-09", "units": 4, "unit_price": 2.0}
    w2 = write_jsonl(tmp_path / "w2", "sales.jsonl", [{**line, "coupon_disc": 0.25}]).parent
    ingest(spark, settings, "sales", w2)
    w3 = _parquet(spark, tmp_path / "w3", [("O3", "P2", "2024-01-16", 7, 2.25, 0.5)], f"{sales}, coupon_disc double")
    [result] = ingest(spark, settings, "sales", w3)

    assert result.rows == 1 and not result.rejected
    bronze = {str(r["sale_date"]): r for r in table(spark, settings, BRONZE_SALES).collect()}
    assert bronze["2024-01-09"]["coupon_disc"] == "0.25" and bronze["2024-01-16"]["coupon_disc"] == "0.5"
    assert bronze["2024-01-16"]["units"] == 7.0 and bronze["2024-01-16"]["_rescued_data"] is None
    ledger = table(spark, settings, BRONZE_FILES).filter(F.col("_batch_id") == result.batch).collect()
    assert [r["notes"] for r in ledger] == ["coupon_disc: double cast to string (the table's type)"]

    # A type that does not fit the table's (text where it holds numbers): the values are kept, not cast.
    w4 = _parquet(spark, tmp_path / "w4", [("O1", "P3", "2024-01-23", 2, 1.0, 3)], f"{sales}, promo_code int")
    ingest(spark, settings, "sales", w4)
    w5 = _parquet(spark, tmp_path / "w5", [("O2", "P3", "2024-01-30", 1, 1.0, "X9")], f"{sales}, promo_code string")
    [result] = ingest(spark, settings, "sales", w5)
    row = table(spark, settings, BRONZE_SALES).filter(F.col("sale_date") == "2024-01-30").first()
    assert row is not None and row["promo_code"] is None and row["_rescued_data"] == '{"promo_code":"X9"}'
    ledger = table(spark, settings, BRONZE_FILES).filter(F.col("_batch_id") == result.batch).collect()
    kept = "promo_code: string does not fit the table's int; values kept in _rescued_data"
    assert [r["notes"] for r in ledger] == [kept]
    assert table(spark, settings, BRONZE_SALES).count() == 6  # every delivered row landed


def test_a_landing_with_nothing_new_is_answered_from_the_ledger_without_a_jvm(spark, settings, tmp_path):
    """The second ingest of a landing lists it in Python and reads the ledger with delta-rs: no JVM starts
    (here none can: java is off the PATH and JAVA_HOME points nowhere), and it says what it skipped."""
    landing = tmp_path / "landing"
    write_csv(
        landing / "outlets",
        "outlets.csv",
        [["O1", "retail", "north", 10.0]],
        ["outlet_id", "channel", "region", "income"],
    )
    write_csv(
        landing / "products",
        "products.csv",
        [["P1", "B1", "M1", "juice", 64]],
        ["product_id", "brand", "manufacturer", "category", "pack_size"],
    )
    write_csv(landing / "sales" / "week=2024-01-01", "sales.csv", ROWS)
    (landing / "sales" / "week=2024-01-01" / "_SUCCESS").write_text("")  # marker files are skipped alike
    for kind, folder in (("outlets", "outlets"), ("products", "products"), ("sales", "sales/week=2024-01-01")):
        assert list_local_delivery(str(landing / folder)) == list_delivery(spark, str(landing / folder))
        ingest(spark, settings, kind, landing / folder)
    versions = {t.name: version(spark, settings, t) for t in (BRONZE_SALES, BRONZE_FILES)}

    no_java = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(Path(sys.executable).parent)}
    no_java |= {"LAKEHOUSE_HOME": str(settings.home), "PYTHONPATH": str(REPO_ROOT)}
    lakehouse = [sys.executable, "-c", "from lakehouse.cli.main import entry; entry()", "ingest"]
    done = subprocess.run([*lakehouse, "--landing", str(landing)], env=no_java, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("already ingested, skipped") == 3, done.stdout
    assert {t.name: version(spark, settings, t) for t in (BRONZE_SALES, BRONZE_FILES)} == versions

    # A changed file is new: then Spark is needed, and without a JVM the command fails instead of skipping.
    write_csv(landing / "sales" / "week=2024-01-01", "sales.csv", [*ROWS, ROWS[0]])
    changed = subprocess.run([*lakehouse, "--landing", str(landing)], env=no_java, capture_output=True, text=True)
    assert changed.returncode != 0 and "already ingested, skipped" not in changed.stdout


def test_object_storage_that_does_not_answer_ends_the_ingest_with_one_line_and_writes_nothing(spark, settings, capsys):
    """S3A on an endpoint nobody listens on (one bucket's own settings, so the session's other buckets keep
    theirs; one attempt, one retry, to keep the test short): exit code 4, no traceback, no table written."""
    from jobs import ingest as ingest_job
    from tests.integration.servers import free_port

    bucket = "unreachable-deliveries"
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    per_bucket = {
        "endpoint": f"http://127.0.0.1:{free_port()}",
        "endpoint.region": "us-east-1",
        "path.style.access": "true",
        "connection.ssl.enabled": "false",
        "access.key": "unused",
        "secret.key": "unused",
        "attempts.maximum": "1",
        "retry.limit": "1",
        "retry.interval": "100ms",
    }
    for key, value in per_bucket.items():
        hadoop.set(f"fs.s3a.bucket.{bucket}.{key}", value)

    assert ingest_job.main(["--kind", "sales", "--source", f"s3a://{bucket}/sales/week=2024-01-01"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("ingest: error: object storage did not answer through S3A's retries")
    assert "Connection refused" in err and "Traceback" not in err
    assert not (Path(BRONZE_SALES.path(settings)) / "_delta_log").exists()
    assert not (Path(BRONZE_FILES.path(settings)) / "_delta_log").exists()
