"""Shape a DataFrame to a contract: the explicit select every builder ends with, and Python rows as a frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lakehouse.contracts.model import Contract
from lakehouse.contracts.versions import ALIASES


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


def rows_to_df(spark: SparkSession, contract: Contract, rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    """Python rows (mappings keyed by column name) as a frame in the contract's columns, order and types.

    A column the rows lack is null, or computed when the contract gives its `transformLogic`. A key the
    contract does not have is an error: a misspelt column must not pass as an empty one.
    """
    rows = list(rows)
    unknown = sorted(set().union(*rows) - set(contract.column_names)) if rows else []
    if unknown:
        raise ValueError(f"{contract.name}: rows have columns the contract does not: {', '.join(unknown)}")
    given = [c for c in contract.columns if not c.transform or any(c.name in r for r in rows)]
    ddl = ", ".join(f"`{c.name}` {c.physical_type}" for c in given)
    df = spark.createDataFrame([tuple(r.get(c.name) for c in given) for r in rows], schema=ddl)
    return select_contract(df, contract)


def type_breaks(written: StructType, contract: Contract) -> list[str]:
    """Columns whose contract type differs from the type the table was written with, each named with both.

    Delta keeps a column's type (a write of another type fails deep in the commit); a column the table
    lacks is added by the write, and one the contract dropped stays, null from then on.
    """
    table_types = {field.name: field.dataType.simpleString() for field in written.fields}
    breaks = []
    for col in contract.columns:
        wanted = col.physical_type.lower().replace(" ", "")
        wanted = ALIASES.get(wanted, wanted)
        if col.name in table_types and table_types[col.name] != wanted:
            breaks.append(f"column {col.name!r} is {wanted} in the contract but {table_types[col.name]} in the table")
    return breaks
