"""Deliveries and the Delta warehouse on s3a://, against a real S3-compatible server on 127.0.0.1.

`moto_server` (from PyPI) serves the S3 API over HTTP; boto3 uploads the deliveries and Spark reads
and writes through hadoop-aws (S3A), as it would against AWS S3 or MinIO.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from lakehouse.io.catalog import BRONZE_FILES, BRONZE_SALES, GOLD_SALES_WEEKLY, SILVER_SALES
from lakehouse.settings import Settings, load_settings
from tests.conftest import BUCKET, use_home, write_csv
from tests.integration.helpers import build, ingest, ingest_references, table, version

pytestmark = pytest.mark.slow  # real servers: see the module docstring


def _upload(client, folder: Path, prefix: str) -> str:
    for path in folder.iterdir():
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")
    return f"s3a://{BUCKET}/{prefix}"


def test_s3a_deliveries_into_a_local_warehouse(spark, settings: Settings, s3, tmp_path, reference_deliveries):
    ingest_references(spark, settings, reference_deliveries)
    rows = [["O1", "P1", "2024-01-02", 5, 2.5, 0, 0, 0], ["O2", "P2", "2024-01-03", -1, 2.0, 1, 0, 0]]
    source = _upload(s3, write_csv(tmp_path / "raw", "sales.csv", rows).parent, "sales/week=2024-01-01")

    [result] = ingest(spark, settings, "sales", source)
    assert ingest(spark, settings, "sales", source)[0].skipped  # the ledger knows the s3a delivery

    assert result.rows == 2
    files = table(spark, settings, BRONZE_FILES).collect()
    assert [f._source_file for f in files if f.kind == "sales"] == [f"{source}/sales.csv"]
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1))
    assert table(spark, settings, SILVER_SALES).count() == 1  # the negative-units row is quarantined


def test_warehouse_on_s3a(spark, s3, tmp_path, monkeypatch: pytest.MonkeyPatch, reference_deliveries):
    use_home(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", f"s3a://{BUCKET}/warehouse")
    settings = load_settings()
    ingest_references(spark, settings, reference_deliveries)
    rows = [["O1", "P1", "2024-01-02", 5, 2.5, 0, 0, 0], ["O3", "P3", "2024-01-04", 7, 3.0, 0, 1, 0]]
    ingest(spark, settings, "sales", write_csv(tmp_path / "raw", "sales.csv", rows).parent)
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1))
    before = version(spark, settings, GOLD_SALES_WEEKLY)
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1))
    assert version(spark, settings, GOLD_SALES_WEEKLY) == before  # same inputs: nothing rewritten
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1), force=True)

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/")["Contents"]}
    assert any(k.startswith(f"warehouse/bronze/{BRONZE_SALES.name}/_delta_log/") for k in keys)
    assert table(spark, settings, GOLD_SALES_WEEKLY).count() == 2
    assert version(spark, settings, GOLD_SALES_WEEKLY) == before + 1  # a forced rebuild replaces the week
