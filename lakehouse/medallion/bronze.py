"""Bronze transforms: conform a delivery's columns to the contract's types without losing a value."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse.contracts.model import Contract
from lakehouse.errors import DeliveryError
from lakehouse.medallion.deliveries import CORRUPT

TRUE_TEXT = ("1", "true", "t", "yes", "y")
FALSE_TEXT = ("0", "false", "f", "no", "n")
RESCUED = "_rescued_data"
TEXT_IN_TYPED_FORMATS = ("string", "date", "timestamp")
# Source types a typed (Parquet) column may have for each contract type; anything else is a conflict.
COMPATIBLE = {
    "double": (T.NumericType,),
    "bigint": (T.IntegralType,),
    "int": (T.IntegralType,),
    "boolean": (T.BooleanType, T.IntegralType),
    "date": (T.DateType, T.TimestampType),
    "timestamp": (T.TimestampType, T.DateType),
    "string": (T.IntegralType,),
}


def parse_text(raw: Column, physical_type: str) -> Column:
    """Parse delivered text into the contract type; null when the text does not parse."""
    text = F.trim(raw)
    if physical_type == "double":
        value = text.try_cast("double")
        # NaN and infinity parse as doubles but are not measurements: treat them as unparseable.
        return F.when(F.isnan(value) | (F.abs(value) == F.lit(float("inf"))), F.lit(None)).otherwise(value)
    if physical_type in ("int", "bigint"):
        return text.try_cast(physical_type)
    if physical_type == "boolean":
        lowered = F.lower(text)
        return F.when(lowered.isin(*TRUE_TEXT), True).when(lowered.isin(*FALSE_TEXT), False)
    if physical_type == "date":
        return F.to_date(F.try_to_timestamp(text, F.lit("yyyy-MM-dd")))
    if physical_type == "timestamp":
        return F.try_to_timestamp(text)
    return raw


def _conform_column(df: DataFrame, name: str, physical_type: str, typed: bool) -> tuple[Column, Column | None]:
    """The typed column and, for text input, the raw text kept when it did not parse."""
    source = df.schema[name].dataType
    # A typed format (Parquet) may carry dates as ISO text, but a number or flag as text is a producer bug.
    text_allowed = not typed or physical_type in TEXT_IN_TYPED_FORMATS
    if isinstance(source, T.StringType) and text_allowed:
        parsed = parse_text(F.col(name), physical_type)
        unparsed = F.when(F.col(name).isNotNull() & (F.trim(F.col(name)) != "") & parsed.isNull(), F.col(name))
        return parsed, unparsed
    if physical_type == source.simpleString() or isinstance(source, COMPATIBLE.get(physical_type, ())):
        return F.col(name).cast(physical_type), None
    raise TypeError(f"column {name!r} is {source.simpleString()} but the contract says {physical_type}")


def with_contract_types(df: DataFrame, contract: Contract, delivery: str, typed: bool = False) -> DataFrame:
    """Cast the contract's columns; unparseable text and malformed lines go to `_rescued_data` as JSON.

    A typed column whose type cannot hold the contract's type (a Parquet `units` of strings, say)
    refuses the whole delivery with a `DeliveryError` naming the column and the delivery.
    """
    columns: dict[str, Column] = {}
    rescued: list[Column] = []
    conflicts: list[str] = []
    for col in contract.columns:
        if col.name.startswith("_"):
            continue
        if col.name not in df.columns:
            columns[col.name] = F.lit(None).cast(col.physical_type)
            continue
        try:
            columns[col.name], unparsed = _conform_column(df, col.name, col.physical_type, typed)
        except TypeError as exc:
            conflicts.append(str(exc))
            continue
        if unparsed is not None:
            rescued += [F.lit(col.name), unparsed]
    if conflicts:
        raise DeliveryError(f"delivery {delivery} refused for {contract.name}: {'; '.join(conflicts)}")
    if CORRUPT in df.columns:
        rescued += [F.lit(CORRUPT), F.col(CORRUPT)]
    rescued_map = F.map_filter(F.create_map(*rescued), lambda _k, v: v.isNotNull()) if rescued else None
    rescued_json = F.when(F.size(rescued_map) > 0, F.to_json(rescued_map)) if rescued_map is not None else F.lit(None)
    extras = [c for c in df.columns if c not in columns and c not in (CORRUPT, RESCUED)]
    return df.select(
        *[value.alias(name) for name, value in columns.items()],
        rescued_json.cast("string").alias(RESCUED),
        *[F.col(c) for c in extras],
    )


def with_ingest_metadata(df: DataFrame, batch: Column | str, ingested_at: datetime) -> DataFrame:
    """Stamp the batch id (a value or a column) and ingest time; `_source_file` is set when files are read."""
    batch_col = batch if isinstance(batch, Column) else F.lit(batch)
    return df.withColumn("_batch_id", batch_col).withColumn("_ingested_at", F.lit(ingested_at))


# Casts that keep every value: the table's type of a column -> the delivered types it takes as they are.
WIDENING: dict[type[T.DataType], tuple[type[T.DataType], ...]] = {
    T.StringType: (T.DataType,),  # any value has a text form
    T.DoubleType: (T.IntegralType, T.FloatType),
    T.LongType: (T.IntegerType, T.ShortType, T.ByteType),
    T.IntegerType: (T.ShortType, T.ByteType),
    T.TimestampType: (T.DateType,),
}


def with_table_types(df: DataFrame, table_schema: T.StructType, contract: Contract) -> tuple[DataFrame, list[str]]:
    """Columns no contract names, in the type the bronze table already has them in: such a column must
    never refuse a delivery (a provider that starts sending `coupon_disc` as a double, after weeks of text).

    The column is cast when the cast keeps every value (anything to text, a narrower number to a wider
    one); otherwise it stays null and its values go to `_rescued_data` as text, under the column's name.
    Returns the frame and a note per column cast or rescued. Contract columns are not touched here: their
    types are the contract's (`with_contract_types`), and a conflict there refuses the delivery.
    """
    existing = {f.name: f.dataType for f in table_schema.fields}
    notes: list[str] = []
    for f in df.schema.fields:
        target = existing.get(f.name)
        if f.name in contract.column_names or target is None or f.dataType == target:
            continue
        if isinstance(f.dataType, T.NullType) or isinstance(f.dataType, WIDENING.get(type(target), ())):
            df = df.withColumn(f.name, F.col(f.name).cast(target))
            notes.append(f"{f.name}: {f.dataType.simpleString()} cast to {target.simpleString()} (the table's type)")
            continue
        text_map = "map<string,string>"
        rescued = F.coalesce(F.from_json(F.col(RESCUED), text_map), F.create_map().cast(text_map))
        value = F.map_filter(F.create_map(F.lit(f.name), F.col(f.name).cast("string")), lambda _k, v: v.isNotNull())
        merged = F.map_concat(rescued, value)
        df = df.withColumn(RESCUED, F.when(F.size(merged) > 0, F.to_json(merged))).withColumn(
            f.name, F.lit(None).cast(target)
        )
        notes.append(
            f"{f.name}: {f.dataType.simpleString()} does not fit the table's {target.simpleString()}; "
            f"values kept in {RESCUED}"
        )
    return df, notes


def type_conflicts(df: DataFrame, table_schema: T.StructType) -> list[str]:
    """Columns whose type in `df` differs from the same column of an existing table."""
    existing = {f.name: f.dataType for f in table_schema.fields}
    return [
        f"column {f.name!r} is {f.dataType.simpleString()} but the table has {existing[f.name].simpleString()}"
        for f in df.schema.fields
        if f.name in existing and f.dataType != existing[f.name] and not isinstance(f.dataType, T.NullType)
    ]
