"""Silver transforms: validate bronze rows against a contract, and keep the latest version of each record."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.contracts.model import Contract, ForeignKey
from lakehouse.contracts.pii import masked, pii_columns
from lakehouse.medallion.bronze import RESCUED
from lakehouse.medallion.deliveries import CORRUPT

REASON = "_reason"
DETAIL = "_detail"
KEY = "_record_key"
STATUS = "_status"  # winner | duplicate | superseded (valid rows only)


def reference_reason(ref: ForeignKey) -> str:
    """Reason code for a row whose foreign key is unknown: silver_outlets -> unknown_outlet."""
    return "unknown_" + ref.table.removeprefix("silver_").removesuffix("s")


def _checks(df: DataFrame, contract: Contract) -> list[tuple[str, Column, Column]]:
    """(reason code, failing condition, detail) for every check, in priority order."""
    rescued = F.from_json(F.col(RESCUED), "map<string,string>")
    checks = [("malformed_record", F.map_contains_key(rescued, CORRUPT), F.lit("malformed record"))]
    # Derived columns (with transformLogic) are not delivered, so they are not checked here.
    present = [c for c in contract.columns if c.name in df.columns and not c.name.startswith("_") and not c.transform]
    for col in present:
        checks.append(
            (
                "unparseable_value",
                F.coalesce(F.map_contains_key(rescued, col.name), F.lit(False)),
                F.concat(F.lit(f"{col.name}="), F.to_json(F.array(rescued[col.name]))),
            )
        )
    for col in present:
        if col.required:
            blank = F.col(col.name).isNull()
            if col.physical_type == "string":
                blank = blank | (F.trim(F.col(col.name)) == "")
            code = "null_key" if col.primary_key else "missing_value"
            checks.append((code, blank, F.lit(f"{col.name} is null")))
    for rule in contract.rules:
        checks.append(
            (
                rule.code,
                F.coalesce(~F.expr(rule.expression), F.lit(False)),
                F.lit(f"{rule.code}: {rule.expression}"),
            )
        )
    for ref in contract.references:
        checks.append(
            (
                reference_reason(ref),
                F.col(f"_ref_{ref.column}").isNull() & F.col(ref.column).isNotNull(),
                F.concat(F.lit(f"{ref.column} "), F.col(ref.column), F.lit(f" not in {ref.table}")),
            )
        )
    return checks


def with_reference_flags(df: DataFrame, contract: Contract, references: dict[str, DataFrame]) -> DataFrame:
    """Join each reference table's keys as `_ref_<column>` (null when the key is unknown)."""
    for ref in contract.references:
        keys_df = (
            references[ref.table]
            .select(F.col(ref.to_column).alias(ref.column), F.lit(True).alias(f"_ref_{ref.column}"))
            .distinct()
        )
        df = df.join(F.broadcast(keys_df), on=ref.column, how="left")
    return df


def with_quarantine_reason(df: DataFrame, contract: Contract) -> DataFrame:
    """Add `_reason` (first failed check, null when the row is valid) and `_detail` (all failed checks)."""
    checks = _checks(df, contract)
    codes = F.filter(F.array(*[F.when(cond, F.lit(code)) for code, cond, _ in checks]), lambda x: x.isNotNull())
    details = F.filter(F.array(*[F.when(cond, detail) for _, cond, detail in checks]), lambda x: x.isNotNull())
    return df.withColumn(REASON, F.try_element_at(codes, F.lit(1))).withColumn(DETAIL, F.array_join(details, "; "))


def record_key(contract: Contract) -> Column:
    """The identity of a record: its unique id when delivered, else the contract's primary key."""
    natural = F.concat(F.lit("nk:"), F.concat_ws("|", *[F.col(c).cast("string") for c in contract.primary_key]))
    unique = [c.name for c in contract.columns if c.unique]
    if not unique:
        return natural
    return F.coalesce(F.concat(F.lit("id:"), F.col(unique[0])), natural)


def filter_record_versions(bronze_df: DataFrame, in_scope: Column, contract: Contract) -> DataFrame:
    """Rows in scope, plus every other version of a record in scope that carries the same unique id.

    Natural keys include the date, so their versions share a week; a record id can move to another
    week in a correction, and then its versions outside the scope must compete too. Needs `_record_key`.
    """
    scoped_df = bronze_df.filter(in_scope)
    unique = [c.name for c in contract.columns if c.unique and c.name in bronze_df.columns]
    if not unique:
        return scoped_df
    has_id = F.col(unique[0]).isNotNull()
    ids_df = scoped_df.filter(has_id).select(KEY).distinct()
    moved_df = bronze_df.filter(~in_scope & has_id).join(ids_df, on=KEY, how="left_semi")
    return scoped_df.unionByName(moved_df)


def with_record_status(df: DataFrame) -> DataFrame:
    """Rank versions of each `_record_key`: the latest delivery wins, earlier deliveries' versions are
    superseded, and extra copies within one delivery are duplicates.

    One window: ordering by delivery first keeps each delivery's copies together, so a row whose
    predecessor came in the same delivery is a copy. Ties within a delivery are broken by file name and
    a hash of the row, so reruns pick the same winner.
    """
    latest_first = Window.partitionBy(KEY).orderBy(
        F.col("_ingested_at").desc(),
        F.col("_batch_id").desc(),
        F.col("_source_file").desc(),
        F.col("_row_hash").desc(),
    )
    return (
        df.withColumn("_row_hash", F.xxhash64(*[F.col(c) for c in df.columns]))
        .withColumn(
            STATUS,
            F.when(F.row_number().over(latest_first) == 1, "winner")
            .when(F.lag("_batch_id").over(latest_first) == F.col("_batch_id"), "duplicate")
            .otherwise("superseded"),
        )
        .drop("_row_hash")
    )


UNCLASSIFIED = "_unclassified"


def build_quarantine(invalid_df: DataFrame, table_name: str, bronze: Contract, bronze_columns: list[str]) -> DataFrame:
    """Quarantine rows: the reason, the detail and the bronze row as JSON.

    The record holds the bronze contract's columns, its `pii` columns as HMACs. Columns no contract names
    are not copied: nobody classified them, and one may hold personal data (a provider's new e-mail
    column). The record names the ones the row carried (`_unclassified`); bronze keeps their values.
    """
    pii = pii_columns(bronze)
    known = [c for c in bronze_columns if c in bronze.column_names]
    fields = [masked(c, pii) for c in known]
    extras = [c for c in bronze_columns if c not in bronze.column_names]
    if extras:
        carried = F.array(*[F.when(F.col(c).isNotNull(), F.lit(c)) for c in extras])
        fields.append(F.filter(carried, lambda name: name.isNotNull()).alias(UNCLASSIFIED))
    week = F.col("week_start") if "week_start" in invalid_df.columns else F.lit(None).cast("date")
    return invalid_df.select(
        F.lit(table_name).alias("table_name"),
        week.cast("date").alias("week_start"),
        F.col(REASON).alias("reason"),
        F.col(DETAIL).alias("detail"),
        F.to_json(F.struct(*fields)).alias("record"),
        F.col("_batch_id"),
        F.col("_source_file"),
        F.col("_ingested_at"),
    )
