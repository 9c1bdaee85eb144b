"""Shape a DataFrame to a contract: the explicit select every builder ends with."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.contracts.model import Contract


def select_contract(df: DataFrame, contract: Contract, extra: tuple[str, ...] = ()) -> DataFrame:
    """The contract's columns in its order and types; a column the input lacks becomes a typed null.

    A column with `transformLogic` in the contract is computed from that Spark SQL expression.
    `extra` names working columns to carry along after the contract's (dropped by the caller).
    """
    columns = []
    for col in contract.columns:
        if col.name in df.columns:
            value = F.col(col.name)
        elif col.transform:
            value = F.expr(col.transform)
        else:
            value = F.lit(None)
        columns.append(value.cast(col.physical_type).alias(col.name))
    return df.select(*columns, *[F.col(c) for c in extra])


def contract_ddl(contract: Contract) -> str:
    """The contract's columns as a Spark DDL schema string (for building small frames from Python rows)."""
    return ", ".join(f"`{c.name}` {c.physical_type}" for c in contract.columns)
