"""Schema evolution, contract versions and backfills."""

from __future__ import annotations

import argparse
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from jobs import backfill, sample_data
from lakehouse.errors import ContractError
from lakehouse.io.catalog import BRONZE_SALES, GOLD_FEATURES, GOLD_SALES_WEEKLY, QUARANTINE, SILVER_SALES
from lakehouse.settings import REPO_ROOT
from tests.conftest import SALES_HEADER, use_home, write_csv
from tests.integration.helpers import assert_same_content, build, ingest, ingest_references, table, version

ROW1 = ["O1", "P1", "2024-01-01", 5, 2.5, 1, 0, 0]
ROW2 = ["O2", "P1", "2024-01-09", 4, 2.5, 0, 0, 1, "SPRING"]


def test_a_new_column_evolves_bronze_without_touching_old_rows(spark, settings, tmp_path):
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", [ROW1]).parent)
    path = BRONZE_SALES.path(settings)
    files_before = set(spark.read.format("delta").load(path).inputFiles())
    ingest(
        spark,
        settings,
        "sales",
        write_csv(tmp_path / "d2", "s.csv", [ROW2], header=[*SALES_HEADER, "promo_code"]).parent,
    )
    bronze = table(spark, settings, BRONZE_SALES)
    assert bronze.schema["promo_code"].dataType.simpleString() == "string"
    assert {r["outlet_id"]: r["promo_code"] for r in bronze.collect()} == {"O1": None, "O2": "SPRING"}
    assert files_before < set(bronze.inputFiles())  # old files kept as they were: no rewrite
    last = DeltaTable.forPath(spark, path).history(1).first()
    assert last["operation"] == "WRITE" and last["operationParameters"]["mode"] == "Append"


def _contracts_with_promo_code(tmp_path: Path) -> Path:
    contracts = tmp_path / "contracts"
    shutil.copytree(REPO_ROOT / "contracts", contracts)
    path = contracts / "silver_sales.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["version"] = "1.2.0"
    doc["schema"][0]["properties"].append({"name": "promo_code", "logicalType": "string", "physicalType": "string"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return contracts


def test_a_column_reaches_silver_when_the_contract_adds_it_and_weeks_are_backfilled(
    spark, settings, tmp_path, reference_deliveries, monkeypatch
):
    ingest_references(spark, settings, reference_deliveries)
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", [ROW1]).parent)
    ingest(
        spark,
        settings,
        "sales",
        write_csv(tmp_path / "d2", "s.csv", [ROW2], header=[*SALES_HEADER, "promo_code"]).parent,
    )
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 8))
    assert "promo_code" not in table(spark, settings, SILVER_SALES).columns  # bronze only, for now

    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(_contracts_with_promo_code(tmp_path)))
    assert backfill.main(["--from", "2024-01-01", "--to", "2024-01-14", "--chunk-weeks", "1"]) == 0
    silver = table(spark, settings, SILVER_SALES)
    assert {r["outlet_id"]: r["promo_code"] for r in silver.collect()} == {"O1": None, "O2": "SPRING"}


def test_a_build_refuses_a_contract_that_would_break_the_table_it_wrote(
    spark, settings, tmp_path, reference_deliveries, monkeypatch
):
    ingest_references(spark, settings, reference_deliveries)
    ingest(spark, settings, "sales", write_csv(tmp_path / "d1", "s.csv", [ROW1]).parent)
    build(spark, settings, date(2024, 1, 1), date(2024, 1, 1))
    before = version(spark, settings, SILVER_SALES), version(spark, settings, GOLD_SALES_WEEKLY)
    contracts = tmp_path / "contracts"
    shutil.copytree(REPO_ROOT / "contracts", contracts)
    path = contracts / "silver_sales.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["version"] = "2.0.0"
    (units,) = [p for p in doc["schema"][0]["properties"] if p["name"] == "units"]
    units["physicalType"] = "bigint"  # whole units only: the table holds doubles
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("LAKEHOUSE_CONTRACTS_DIR", str(contracts))

    message = r"contract silver_sales 2.0.0 does not fit .*column 'units' is bigint in the contract but double"
    with pytest.raises(ContractError, match=message):
        build(spark, settings, date(2024, 1, 1), date(2024, 1, 1), force=True)
    assert (version(spark, settings, SILVER_SALES), version(spark, settings, GOLD_SALES_WEEKLY)) == before


@pytest.mark.world  # eight builds of six weeks: `make test` runs it, `make test-fast` not
def test_a_backfill_equals_building_the_weeks_one_by_one(spark, tmp_path, monkeypatch):
    deliveries = tmp_path / "synthetic"
    assert (
        sample_data.main(
            [
                "synthetic",
                "--out",
                str(deliveries),
                "--outlets",
                "3",
                "--products",
                "3",
                "--weeks",
                "6",
                "--start",
                "2024-01-01",
            ]
        )
        == 0
    )
    weeks = sorted(deliveries.glob("sales/week=*"))
    homes = {}
    for name in ("weekly", "backfill"):
        settings = homes[name] = use_home(monkeypatch, tmp_path / name)
        ingest_references(spark, settings, {k: deliveries / k for k in ("outlets", "products")})
        ingest(spark, settings, "sales", *weeks)
    for folder in weeks:  # in delivery order, as the weekly schedule would
        day = date.fromisoformat(folder.name.removeprefix("week="))
        build(spark, homes["weekly"], day, day)
    use_home(monkeypatch, tmp_path / "backfill")
    assert backfill.run(backfill_args("2024-01-01", "2024-02-05", chunk=4)) == 0

    for t in (SILVER_SALES, QUARANTINE, GOLD_SALES_WEEKLY, GOLD_FEATURES):
        a, b = (table(spark, homes[n], t) for n in ("weekly", "backfill"))
        assert_same_content(a, b, drop=("_ingested_at",))
    features = table(spark, homes["backfill"], GOLD_FEATURES)
    assert features.count() == 3 * 3 * 6
    assert features.filter(F.col("units_next_week").isNull()).count() == 9  # only the last week lacks a label


def backfill_args(first: str, last: str, chunk: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backfill.add_arguments(parser)
    return parser.parse_args(["--from", first, "--to", last, "--chunk-weeks", str(chunk)])
