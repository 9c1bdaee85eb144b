"""Sample data: Dominick's deliveries from the Debian package, and the synthetic generator."""

from __future__ import annotations

import csv
import json
from datetime import date

from pyspark.sql import functions as F

from jobs import sample_data
from lakehouse.io.catalog import GOLD_FEATURES, QUARANTINE
from lakehouse.settings import REPO_ROOT
from lakehouse.sources import dominicks
from tests.integration.helpers import build, ingest, ingest_references, table


def test_dominicks_deliveries_follow_the_raw_interface(tmp_path):
    stats = dominicks.write_deliveries(dominicks.fetch_rda(REPO_ROOT / ".cache" / "debs"), tmp_path / "dom")
    assert stats == {"sales_rows": 106139, "weeks": 121, "outlets": 83}
    first = tmp_path / "dom" / "sales" / "week=1990-06-14" / "sales.csv"
    rows = list(csv.DictReader(first.open()))
    assert rows[0] == {
        "outlet_id": "DOM002",
        "product_id": "OJ01",
        "sale_date": "1990-06-14",
        "units": "8256",
        "unit_price": "3.87",
        "on_deal": "1",
        "featured": "0",
        "profit_margin_pct": "37.992",
    }
    products = list(csv.DictReader((tmp_path / "dom" / "products" / "products.csv").open()))
    assert len(products) == 11 and {p["brand"] for p in products} >= {"Tropicana", "Minute Maid"}
    assert sorted(p.name for p in (tmp_path / "dom" / "sales").iterdir())[-1] == "week=1992-10-01"


def test_three_weeks_of_dominicks_build_sensible_features(spark, settings, tmp_path):
    out = tmp_path / "dom"
    dominicks.write_deliveries(dominicks.fetch_rda(REPO_ROOT / ".cache" / "debs"), out)
    ingest_references(spark, settings, {"outlets": out / "outlets", "products": out / "products"})
    ingest(spark, settings, "sales", *sorted((out / "sales").glob("week=1990-0[67]-*"))[:3])
    build(spark, settings, date(1990, 6, 11), date(1990, 6, 25))
    features = table(spark, settings, GOLD_FEATURES)
    assert features.count() == 803 + 737 + 737
    assert features.filter(F.col("price_index").isNull() | F.isnan("price_index")).count() == 0
    assert features.filter(F.col("income").isNull() | F.col("brand").isNull()).count() == 0
    assert table(spark, settings, QUARANTINE).count() == 0


def test_synthetic_data_is_reproducible_and_carries_its_truth(spark, tmp_path):
    args = ["--outlets", "4", "--products", "3", "--weeks", "5", "--format", "parquet", "--layout", "single"]
    for name in ("a", "b"):
        assert sample_data.main(["synthetic", "--out", str(tmp_path / name), *args]) == 0
    a, b = (spark.read.parquet(str(tmp_path / n / "sales" / "all")) for n in ("a", "b"))
    assert a.count() == 4 * 3 * 5 and a.exceptAll(b).count() == 0
    assert a.filter((F.col("units") < 0) | (F.col("unit_price") <= 0)).count() == 0
    truth = json.loads((tmp_path / "a" / "truth.json").read_text())
    assert truth["truth"]["price_elasticity"] < 0 and truth["deal_lift_pct"] > 0
    outlets = spark.read.parquet(str(tmp_path / "a" / "outlets"))
    assert outlets.count() == 4 and set(outlets.columns) >= {"outlet_id", "channel", "region"}
    assert not [c for c in outlets.columns if c.startswith("_")]  # hidden effects stay hidden
