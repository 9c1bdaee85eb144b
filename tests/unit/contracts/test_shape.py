"""Python rows become frames of a contract's shape."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_df_equality

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import rows_to_df, select_contract
from lakehouse.io.catalog import CONSERVATION

ROW = {
    "table_name": "silver_sales",
    "week_start": date(2026, 1, 5),
    "bronze_rows": 10,
    "silver_rows": 9,
    "quarantined": 1,
    "duplicates": 0,
    "superseded": 0,
    "source": "b1",
    "is_balanced": True,
}


def test_rows_take_the_contracts_columns_order_and_types(spark):
    contract = load_contract(CONSERVATION.contract)
    df = rows_to_df(spark, contract, [{k: ROW[k] for k in reversed(ROW)}, {"table_name": "silver_outlets"}])
    assert df.columns == contract.column_names
    assert dict(df.dtypes)["bronze_rows"] == "bigint" and dict(df.dtypes)["week_start"] == "date"
    expected = select_contract(spark.createDataFrame([ROW]), contract).union(
        select_contract(spark.createDataFrame([{"table_name": "silver_outlets"}]), contract)
    )
    assert_df_equality(df, expected, ignore_nullable=True)


def test_an_unknown_column_is_an_error(spark):
    with pytest.raises(ValueError, match="silver_conservation: rows have columns the contract does not: bronze_row"):
        rows_to_df(spark, load_contract(CONSERVATION.contract), [{**ROW, "bronze_row": 3}])
