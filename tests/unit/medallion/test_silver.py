"""Validation reasons, record identity and the latest-delivery-wins rule."""

from __future__ import annotations

from datetime import date, datetime

from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.medallion.silver import (
    DETAIL,
    KEY,
    REASON,
    STATUS,
    record_key,
    with_quarantine_reason,
    with_record_status,
    with_reference_flags,
)

BRONZE = (
    "outlet_id string, product_id string, sale_date date, units double, unit_price double, record_id string, "
    "_rescued_data string, _batch_id string, _source_file string, _ingested_at timestamp"
)
AT = datetime(2024, 3, 1)
DAY = date(2024, 1, 2)


def _reasons(spark, rows):
    contract = load_contract("silver_sales")
    bronze = spark.createDataFrame(rows, BRONZE)
    refs = {
        "silver_outlets": spark.createDataFrame([("O1",)], "outlet_id string"),
        "silver_products": spark.createDataFrame([("P1",)], "product_id string"),
    }
    checked = bronze.transform(lambda df: with_reference_flags(df, contract, refs)).transform(
        lambda df: with_quarantine_reason(df, contract)
    )
    return {r["units"]: (r[REASON], r[DETAIL]) for r in checked.collect()}


def test_each_rule_gives_its_reason(spark):
    rows = [
        ("O1", "P1", DAY, 1.0, 2.0, None, None, "b", "f", AT),  # valid
        (None, "P1", DAY, 2.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P1", DAY, -3.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P1", DAY, 4.0, 0.0, None, None, "b", "f", AT),
        ("O9", "P1", DAY, 5.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P9", DAY, 6.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P1", date(2024, 3, 2), 7.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P1", None, 8.0, 2.0, None, '{"sale_date":"2024-02-30"}', "b", "f", AT),
        ("  ", "P1", DAY, 9.0, 2.0, None, None, "b", "f", AT),
        ("O1", "P1", DAY, 10.0, None, None, '{"_corrupt_record":"O1,P1"}', "b", "f", AT),
        ("O1", "P1", DAY, 11.0, None, None, None, "b", "f", AT),
    ]
    reasons = _reasons(spark, rows)
    assert {units: reason for units, (reason, _) in reasons.items()} == {
        1.0: None,
        2.0: "null_key",
        -3.0: "negative_units",
        4.0: "non_positive_price",
        5.0: "unknown_outlet",
        6.0: "unknown_product",
        7.0: "future_date",
        8.0: "unparseable_value",
        9.0: "null_key",
        10.0: "malformed_record",
        11.0: "missing_value",
    }
    assert reasons[8.0][1].startswith('sale_date=["2024-02-30"]')
    assert "missing_value" not in reasons[-3.0][1]


def test_several_failures_are_all_in_the_detail(spark):
    reasons = _reasons(spark, [("O9", "P1", DAY, -1.0, -2.0, None, None, "b", "f", AT)])
    reason, detail = reasons[-1.0]
    assert reason == "negative_units"
    assert "non_positive_price" in detail and "O9 not in silver_outlets" in detail


def test_record_key_prefers_record_id(spark):
    contract = load_contract("silver_sales")
    df = spark.createDataFrame(
        [("O1", "P1", DAY, "r1"), ("O1", "P1", DAY, None)],
        "outlet_id string, product_id string, sale_date date, record_id string",
    )
    keys = [r[0] for r in df.select(record_key(contract)).collect()]
    assert keys == ["id:r1", "nk:O1|P1|2024-01-02"]


def test_latest_delivery_wins_and_the_rest_are_duplicates_or_superseded(spark):
    early, late = datetime(2024, 1, 1), datetime(2024, 2, 1)
    df = spark.createDataFrame(
        [
            ("k1", 1.0, "b1", "f1", early),
            ("k1", 2.0, "b2", "f2", late),  # correction: wins
            ("k1", 2.5, "b1", "f1", early),  # second copy in the old delivery: a duplicate
            ("k2", 3.0, "b1", "f1", early),
            ("k2", 3.0, "b1", "f1", early),  # exact copy within one delivery: duplicate
            ("k3", None, "b1", "f1", early),
        ],
        f"{KEY} string, units double, _batch_id string, _source_file string, _ingested_at timestamp",
    )
    actual = df.transform(with_record_status).groupBy(KEY, STATUS).count()
    expected = spark.createDataFrame(
        [
            ("k1", "winner", 1),
            ("k1", "superseded", 1),
            ("k1", "duplicate", 1),
            ("k2", "winner", 1),
            ("k2", "duplicate", 1),
            ("k3", "winner", 1),
        ],
        f"{KEY} string, {STATUS} string, count long",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    winner = df.transform(with_record_status).filter(F.col(STATUS) == "winner").filter(F.col(KEY) == "k1")
    assert winner.first()["units"] == 2.0


def test_winner_is_the_same_on_every_run(spark):
    df = spark.createDataFrame(
        [("k", float(u), "b1", "f1", datetime(2024, 1, 1)) for u in range(20)],
        f"{KEY} string, units double, _batch_id string, _source_file string, _ingested_at timestamp",
    )
    winners = {
        df.repartition(n).transform(with_record_status).filter(F.col(STATUS) == "winner").first()["units"]
        for n in (1, 3, 7)
    }
    assert len(winners) == 1
