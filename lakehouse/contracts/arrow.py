"""A contract's columns as an Arrow schema, for writers without Spark (delta-rs): fixtures and benchmarks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from lakehouse.contracts.model import load_contract

SIMPLE = {
    "string": pa.string(),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def _split(body: str) -> list[str]:
    """Comma-separated parts of a type's body, at the top level only."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(body):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]]


def arrow_type(spark_type: str) -> pa.DataType:
    """The Arrow type of a contract's physicalType (Spark's names: array<...>, map<...>, struct<a:t,...>)."""
    if spark_type.startswith("array<"):
        return pa.list_(arrow_type(spark_type[6:-1]))
    if spark_type.startswith("map<"):
        key, value = _split(spark_type[4:-1])
        return pa.map_(arrow_type(key), arrow_type(value))
    if spark_type.startswith("struct<"):
        fields = (f.split(":", 1) for f in _split(spark_type[7:-1]))
        return pa.struct([pa.field(name, arrow_type(kind)) for name, kind in fields])
    return SIMPLE[spark_type]


def contract_schema(contract_name: str, contracts_dir: Path | None = None) -> pa.Schema:
    """The Arrow schema of a contract's columns, in its order."""
    contract = load_contract(contract_name, contracts_dir)
    return pa.schema([pa.field(c.name, arrow_type(c.physical_type)) for c in contract.columns])
