"""Typing delivered text to the contract without losing a value."""

from __future__ import annotations

import json
from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.errors import DeliveryError
from lakehouse.medallion.bronze import parse_text, type_conflicts, with_contract_types


@pytest.mark.parametrize(
    ("physical_type", "texts", "expected"),
    [
        ("double", ["1.5", " 2 ", "abc", "NaN", "inf", None, ""], [1.5, 2.0, None, None, None, None, None]),
        ("boolean", ["1", "true", "No", "F", "maybe", None], [True, True, False, False, None, None]),
        ("date", ["2024-01-05", "2024-13-01", "05/01/2024", None], [date(2024, 1, 5), None, None, None]),
        ("bigint", ["7", "7.5", "x"], [7, None, None]),
    ],
)
def test_parse_text_parses_or_returns_null(spark, physical_type, texts, expected):
    df = spark.createDataFrame([(t,) for t in texts], "raw string")
    actual = [r[0] for r in df.select(parse_text(F.col("raw"), physical_type)).collect()]
    assert actual == expected


def test_unparseable_values_are_kept_in_rescued_data(spark):
    contract = load_contract("bronze_sales")
    raw = spark.createDataFrame(
        [
            ("O1", "P1", "2024-01-01", "5", "2.50", "1", None, None, None, None),
            ("O1", "P2", "2024-01-0x", "five", "2.50", "yes", "0", None, "r9", None),
            (None, None, None, None, None, None, None, None, None, "O1,P1,garbled"),
        ],
        "outlet_id string, product_id string, sale_date string, units string, unit_price string, on_deal string, "
        "featured string, on_display string, record_id string, _corrupt_record string",
    )
    typed = with_contract_types(raw.withColumn("extra_col", F.lit("kept")), contract, "d1")
    rows = typed.orderBy(F.col("product_id").asc_nulls_last()).collect()
    assert rows[0]["units"] == 5.0 and rows[0]["_rescued_data"] is None and rows[0]["on_deal"] is True
    assert json.loads(rows[1]["_rescued_data"]) == {"sale_date": "2024-01-0x", "units": "five"}
    assert rows[1]["sale_date"] is None and rows[1]["units"] is None and rows[1]["on_deal"] is True
    assert json.loads(rows[2]["_rescued_data"]) == {"_corrupt_record": "O1,P1,garbled"}
    assert typed.schema["units"].dataType.simpleString() == "double"
    assert "extra_col" in typed.columns and "_corrupt_record" not in typed.columns


def test_missing_optional_columns_become_typed_nulls(spark):
    contract = load_contract("bronze_sales")
    raw = spark.createDataFrame(
        [("O1", "P1", "2024-01-01", "5", "2.5")],
        "outlet_id string, product_id string, sale_date string, units string, unit_price string",
    )
    typed = with_contract_types(raw, contract, "d1")
    expected = spark.createDataFrame(
        [("O1", "P1", date(2024, 1, 1), 5.0, 2.5, None, None, None, None, None)],
        "outlet_id string, product_id string, sale_date date, units double, unit_price double, on_deal boolean, "
        "featured boolean, on_display boolean, record_id string, _rescued_data string",
    )
    assert_df_equality(typed, expected, ignore_nullable=True)


def test_typed_column_of_the_wrong_kind_refuses_the_delivery(spark):
    contract = load_contract("bronze_sales")
    raw = spark.createDataFrame(
        [("O1", "P1", date(2024, 1, 1), 3, 2.5)],
        "outlet_id string, product_id string, sale_date date, units int, unit_price double",
    )
    ok = with_contract_types(raw, contract, "d-ok")  # integer units widen to double
    assert ok.schema["units"].dataType.simpleString() == "double"
    bad = raw.withColumn("units", F.lit("3"))
    bad = spark.createDataFrame(bad.rdd, bad.schema)  # keep it a string column
    wrong = bad.withColumn("unit_price", F.lit(date(2024, 1, 1)))
    with pytest.raises(
        DeliveryError, match=r"delivery d-bad refused .*'unit_price' is date but the contract says double"
    ):
        with_contract_types(wrong, contract, "d-bad")


def test_type_conflicts_name_the_column(spark):
    table = spark.createDataFrame([], "units double, promo string")
    delivered = spark.createDataFrame([], "units double, promo int")
    assert type_conflicts(delivered, table.schema) == ["column 'promo' is int but the table has string"]
