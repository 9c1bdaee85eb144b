"""Bronze to silver to gold for a range of weeks (`lakehouse build`, `lakehouse backfill`): reference tables,
silver sales with their quarantine, gold sales and features, then each week's conservation row, which
is also the record of the inputs it was built from (a rebuild from the same inputs writes nothing)."""

from __future__ import annotations

import time
from datetime import date
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts import pii
from lakehouse.contracts.model import Contract, load_contract
from lakehouse.contracts.shape import rows_to_df, select_contract, type_breaks
from lakehouse.errors import ConflictError, ContractError, DataError
from lakehouse.io import delta_io
from lakehouse.io.catalog import (
    BRONZE_OUTLETS,
    BRONZE_PRODUCTS,
    BRONZE_SALES,
    CONSERVATION,
    GOLD_FEATURES,
    GOLD_SALES_WEEKLY,
    QUARANTINE,
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    SILVER_SALES,
    Table,
)
from lakehouse.io.lineage import code_id
from lakehouse.medallion.gold import affected_feature_weeks, build_features, build_sales_weekly, feature_input_weeks
from lakehouse.medallion.silver import (
    KEY,
    REASON,
    STATUS,
    build_quarantine,
    filter_record_versions,
    record_key,
    with_quarantine_reason,
    with_record_status,
    with_reference_flags,
)
from lakehouse.progress import Progress
from lakehouse.settings import Settings

# The week a bronze row is accounted in. Rows without a usable date (missing, unparseable, or in a week
# after their delivery was ingested) have none: every build quarantines them in the undated partition,
# so no row waits in bronze for a week nobody builds.
WEEK_OF_ROW = (
    "CASE WHEN sale_date <= date_add(to_date(date_trunc('week', _ingested_at)), 6) "
    "THEN to_date(date_trunc('week', sale_date)) END"
)


# A build that another job's commits to the same weeks refused is run again this many times in all, after
# 1x, 2x ... this pause (bench: a week's build takes seconds, so the other job has usually committed by then).
CONFLICT_ATTEMPTS, CONFLICT_BACKOFF_S = 3, 2.0
ROW_COUNTS = ("bronze_rows", "silver_rows", "quarantined", "duplicates", "superseded")


def _conservation(
    spark: SparkSession,
    settings: Settings,
    table: Table,
    predicate: str,
    bronze_df: DataFrame,
    statuses_df: DataFrame,
    source: str,
) -> list[dict]:
    """Per week: bronze rows in = silver + quarantined + duplicates + superseded, counted on the written tables.

    One Spark job: the four inputs are tagged, unioned and counted together.
    """
    by_week = "week_start" in bronze_df.columns
    quarantine_df = delta_io.read(spark, QUARANTINE, settings).filter(F.col("table_name") == table.name)
    if by_week:
        quarantine_df = quarantine_df.filter(f"({predicate}) OR week_start IS NULL")
    week = F.col("week_start") if by_week else F.lit(None).cast("date").alias("week_start")
    duplicates_or_superseded = F.when(F.col(STATUS) == "duplicate", "duplicates").otherwise("superseded")
    tagged = [
        bronze_df.select(week, F.lit("bronze_rows").alias("kind")),
        delta_io.read(spark, table, settings).filter(predicate).select(week, F.lit("silver_rows").alias("kind")),
        quarantine_df.select(week, F.lit("quarantined").alias("kind")),
        statuses_df.filter(F.col(STATUS) != "winner").select(week, duplicates_or_superseded.alias("kind")),
    ]
    counts = delta_io.count_by(reduce(DataFrame.unionByName, tagged), "week_start", "kind")
    rows = []
    for wk in sorted({w for w, _ in counts}, key=lambda d: (d is not None, d)):
        n = {kind: counts.get((wk, kind), 0) for kind in ROW_COUNTS}
        balanced = n["bronze_rows"] == n["silver_rows"] + n["quarantined"] + n["duplicates"] + n["superseded"]
        rows.append({"table_name": table.name, "week_start": wk, **n, "source": source, "is_balanced": balanced})
    return rows


def _write_conservation(spark: SparkSession, settings: Settings, rows: list[dict], predicate: str) -> None:
    contract = load_contract(CONSERVATION.contract)
    df = rows_to_df(spark, contract, rows)
    delta_io.replace_where(df, CONSERVATION, settings, predicate)
    unbalanced = [r for r in rows if not r["is_balanced"]]
    if unbalanced:
        raise DataError(f"row conservation failed for {len(unbalanced)} partition(s), first: {unbalanced[0]}")


def _source(bronze: Table, bronze_version: int, silver: Table, pii_key_id: str = "") -> str:
    """Lineage of a build: the bronze version it read, the contract version it applied and the PII key's id."""
    source = f"{bronze.name}@v{bronze_version} contract {silver.name} {load_contract(silver.contract).version}"
    return f"{source} pii key {pii_key_id}" if pii_key_id else source


def _pseudonymiser(spark: SparkSession, bronze_contract: Contract) -> str:
    """Register `pii_hmac` when bronze holds pii columns (the key is then required); the key's id, else ''."""
    if not pii.pii_columns(bronze_contract):
        return ""
    key = pii.load_key()
    pii.register(spark, key)
    return pii.key_id(key)


def _already_built(spark: SparkSession, settings: Settings, silver: Table, source: str) -> bool:
    """A reference table needs no rebuild when its last balanced build read this very source."""
    if not delta_io.exists(spark, CONSERVATION, settings) or not delta_io.exists(spark, silver, settings):
        return False
    done = delta_io.read(spark, CONSERVATION, settings).filter(
        (F.col("table_name") == silver.name) & (F.col("source") == source) & F.col("is_balanced")
    )
    return done.limit(1).count() == 1


def build_reference(spark: SparkSession, settings: Settings, bronze: Table, silver: Table) -> list[dict]:
    """Rebuild a reference table from all of its bronze rows: latest valid delivery wins per key.

    Skipped when neither bronze, the contract nor the PII key changed since the last build (the result would
    be the same). Columns the bronze contract classifies as pii reach silver and quarantine only as HMACs.
    """
    bronze_contract = load_contract(bronze.contract)
    key_id = _pseudonymiser(spark, bronze_contract)
    bronze_version = delta_io.version(spark, bronze, settings)
    source = _source(bronze, bronze_version, silver, key_id)
    if _already_built(spark, settings, silver, source):
        return []
    contract = load_contract(silver.contract)
    bronze_df = delta_io.read(spark, bronze, settings, bronze_version)
    checked = bronze_df.transform(lambda df: with_quarantine_reason(df, contract))
    valid = checked.filter(F.col(REASON).isNull()).withColumn(KEY, record_key(contract)).transform(with_record_status)
    delta_io.overwrite(select_contract(valid.filter(F.col(STATUS) == "winner"), contract), silver, settings)
    quarantine_df = build_quarantine(
        checked.filter(F.col(REASON).isNotNull()), silver.name, bronze_contract, bronze_df.columns
    )
    table_predicate = f"table_name = '{silver.name}'"
    delta_io.replace_where(quarantine_df, QUARANTINE, settings, table_predicate)
    rows = _conservation(spark, settings, silver, "true", bronze_df, valid, source)
    _write_conservation(spark, settings, rows, table_predicate)
    return rows


def build_silver_sales(
    spark: SparkSession, settings: Settings, first: date, last: date, bronze_version: int, source: str
) -> list[dict]:
    """Rebuild silver sales (and their quarantine) for weeks [first, last], plus the undated bronze rows.

    Returns the weeks' conservation rows; `build_weeks` writes them once gold is built too.
    """
    contract = load_contract(SILVER_SALES.contract)
    weeks = delta_io.week_predicate([(first, last)])
    bronze_contract = load_contract(BRONZE_SALES.contract)
    bronze_df = _bronze_sales(spark, settings, bronze_version).withColumn(KEY, record_key(contract))
    in_scope = F.expr(weeks) | F.col("week_start").isNull()
    references = {t.name: delta_io.read(spark, t, settings) for t in REFERENCE_TABLES}
    checked = (
        filter_record_versions(bronze_df, in_scope, contract)
        .transform(lambda df: with_reference_flags(df, contract, references))
        .transform(lambda df: with_quarantine_reason(df, contract))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    statuses = (
        checked.filter(F.col(REASON).isNull())
        .transform(with_record_status)
        .filter(in_scope)
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    winners = select_contract(statuses.filter(F.col(STATUS) == "winner"), contract)
    delta_io.replace_where(winners, SILVER_SALES, settings, weeks)
    bronze_columns = [c for c in bronze_df.columns if c not in ("week_start", KEY)]
    quarantine_df = build_quarantine(
        checked.filter(in_scope & F.col(REASON).isNotNull()), SILVER_SALES.name, bronze_contract, bronze_columns
    )
    delta_io.replace_where(quarantine_df, QUARANTINE, settings, _sales_scope(weeks))
    rows = _conservation(spark, settings, SILVER_SALES, weeks, bronze_df.filter(in_scope), statuses, source)
    checked.unpersist()
    statuses.unpersist()
    return rows


def _bronze_sales(spark: SparkSession, settings: Settings, bronze_version: int) -> DataFrame:
    """Bronze sales as of a version, each row with the week it is accounted in (WEEK_OF_ROW)."""
    return delta_io.read(spark, BRONZE_SALES, settings, bronze_version).withColumn("week_start", F.expr(WEEK_OF_ROW))


def _sales_scope(weeks: str) -> str:
    """The quarantine and conservation rows a build of `weeks` replaces: its weeks and the undated rows."""
    return f"table_name = '{SILVER_SALES.name}' AND (({weeks}) OR week_start IS NULL)"


REFERENCE_TABLES = (SILVER_OUTLETS, SILVER_PRODUCTS)

# The code a build of silver sales and gold runs: part of its lineage, so a changed transform rebuilds.
BUILD_CODE = (
    "lakehouse.medallion.build_flow",
    "lakehouse.medallion.silver",
    "lakehouse.medallion.gold",
    "lakehouse.contracts.shape",
    "lakehouse.contracts.pii",
)


def _sales_source(spark: SparkSession, settings: Settings, bronze_version: int, key_id: str) -> str:
    """Lineage of a silver sales and gold build: everything the weeks' content is a function of.

    Bronze's version, the PII key's id, the reference tables' versions (unknown outlets and products are
    quarantined; features take outlet and product attributes), the contracts and the code.
    """
    silver = _source(BRONZE_SALES, bronze_version, SILVER_SALES, key_id)
    references = " ".join(f"{t.name}@v{delta_io.version(spark, t, settings)}" for t in REFERENCE_TABLES)
    gold = " ".join(f"{t.name} {load_contract(t.contract).version}" for t in (GOLD_SALES_WEEKLY, GOLD_FEATURES))
    return f"{silver}; {references}; contracts {gold}; code {code_id(BUILD_CODE)}"


def sales_inputs(spark: SparkSession, settings: Settings) -> tuple[int, str]:
    """The bronze sales version a build reads (pinned once) and the build's lineage (`_sales_source`)."""
    key_id = _pseudonymiser(spark, load_contract(BRONZE_SALES.contract))
    bronze_version = delta_io.version(spark, BRONZE_SALES, settings)
    return bronze_version, _sales_source(spark, settings, bronze_version, key_id)


def write_sales_conservation(
    spark: SparkSession, settings: Settings, rows: list[dict], first: date, last: date
) -> None:
    """Replace the conservation rows of weeks [first, last] and the undated rows; fails if one is unbalanced."""
    _write_conservation(spark, settings, rows, _sales_scope(delta_io.week_predicate([(first, last)])))


def _weeks_built(spark: SparkSession, settings: Settings, bronze_version: int, weeks: str, source: str) -> list[dict]:
    """The weeks' conservation rows when their last build read exactly `source`, else [].

    `build_weeks` writes a week's conservation row last, after its gold: a balanced row with this source,
    for every week (and the undated rows) that bronze holds rows of, with the same bronze count, means
    silver and gold of those weeks are what a rebuild would write. Gold features also read neighbouring
    weeks, but any build of a neighbour rewrites the features that read it.
    """
    needed = (CONSERVATION, SILVER_SALES, GOLD_SALES_WEEKLY, GOLD_FEATURES)
    if not all(delta_io.exists(spark, t, settings) for t in needed):
        return []
    recorded = [r.asDict() for r in delta_io.read(spark, CONSERVATION, settings).filter(_sales_scope(weeks)).collect()]
    if not recorded or any(r["source"] != source or not r["is_balanced"] for r in recorded):
        return []
    in_scope = F.expr(weeks) | F.col("week_start").isNull()
    bronze_rows = delta_io.count_by(_bronze_sales(spark, settings, bronze_version).filter(in_scope), "week_start")
    return recorded if {(r["week_start"],): r["bronze_rows"] for r in recorded} == bronze_rows else []


def build_gold(spark: SparkSession, settings: Settings, first: date, last: date) -> None:
    """Weekly facts for [first, last], then the feature weeks those facts feed."""
    weeks = delta_io.week_predicate([(first, last)])
    silver_df = delta_io.read(spark, SILVER_SALES, settings).filter(weeks)
    delta_io.replace_where(
        build_sales_weekly(silver_df, load_contract(GOLD_SALES_WEEKLY.contract)),
        GOLD_SALES_WEEKLY,
        settings,
        weeks,
    )
    needed = delta_io.week_predicate(feature_input_weeks(first, last))
    weekly_df = delta_io.read(spark, GOLD_SALES_WEEKLY, settings).filter(needed)
    outlets_df = delta_io.read(spark, SILVER_OUTLETS, settings)
    products_df = delta_io.read(spark, SILVER_PRODUCTS, settings)
    affected = delta_io.week_predicate(affected_feature_weeks(first, last))
    features_df = build_features(weekly_df, outlets_df, products_df, load_contract(GOLD_FEATURES.contract))
    delta_io.replace_where(features_df.filter(affected), GOLD_FEATURES, settings, affected)


# The tables a build writes, each in its contract's shape.
BUILT_TABLES = (
    SILVER_OUTLETS,
    SILVER_PRODUCTS,
    SILVER_SALES,
    QUARANTINE,
    GOLD_SALES_WEEKLY,
    GOLD_FEATURES,
    CONSERVATION,
)


def check_contracts_fit(spark: SparkSession, settings: Settings) -> None:
    """Refuse, before any write, a contract version that would break a table the build already wrote: a
    column whose type changed (a breaking change: a new major version and a new table, or a migration)."""
    for table in BUILT_TABLES:
        if not delta_io.exists(spark, table, settings):
            continue
        contract = load_contract(table.contract)
        breaks = type_breaks(delta_io.read(spark, table, settings).schema, contract)
        if breaks:
            raise ContractError(
                f"contract {contract.name} {contract.version} does not fit the table it already wrote "
                f"({table.path(settings)}): {'; '.join(breaks)}; nothing was written"
            )


def build_weeks(
    spark: SparkSession, settings: Settings, first: date, last: date, progress: Progress, force: bool = False
) -> dict:
    """Reference tables, then silver sales and gold for the weeks; returns the conservation totals.

    Weeks whose last build read the same inputs (`_sales_source`) are left as they are, unless `force`.
    Another job committing to the same weeks meanwhile (a CLI backfill beside a scheduled build) makes
    Delta refuse this job's commit: the weeks are built again from the new table versions, at most
    CONFLICT_ATTEMPTS times, then a ConflictError says so. A build is idempotent, so the retry may find
    the other job's result and write nothing; the week's conservation row, written last, marks it built.
    """
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return _build_weeks_once(spark, settings, first, last, progress, force)
        except delta_io.CONCURRENT_WRITE as exc:
            what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            if attempt == CONFLICT_ATTEMPTS:
                raise ConflictError(
                    f"weeks {first}..{last}: another job kept writing the same tables ({what}) through "
                    f"{CONFLICT_ATTEMPTS} attempts; run the command again once it is done"
                ) from exc
            progress(
                f"another job wrote the same tables at the same time ({what}); building weeks {first}..{last} "
                f"again (attempt {attempt + 1} of {CONFLICT_ATTEMPTS})"
            )
            time.sleep(attempt * CONFLICT_BACKOFF_S)
    raise AssertionError("unreachable")


def _build_weeks_once(
    spark: SparkSession, settings: Settings, first: date, last: date, progress: Progress, force: bool
) -> dict:
    check_contracts_fit(spark, settings)
    for bronze, silver in ((BRONZE_OUTLETS, SILVER_OUTLETS), (BRONZE_PRODUCTS, SILVER_PRODUCTS)):
        build_reference(spark, settings, bronze, silver)
    bronze_version, source = sales_inputs(spark, settings)
    weeks = delta_io.week_predicate([(first, last)])
    built = [] if force else _weeks_built(spark, settings, bronze_version, weeks, source)
    rows = built or build_silver_sales(spark, settings, first, last, bronze_version, source)
    totals = {key: sum(row[key] for row in rows) for key in ROW_COUNTS}
    counts = ", ".join(f"{k}={v}" for k, v in totals.items())
    if built:
        progress(f"weeks {first}..{last} already built from these inputs, nothing written ({counts})")
        return totals
    progress(f"silver weeks {first}..{last}: {counts}")
    if all(row["is_balanced"] for row in rows):
        build_gold(spark, settings, first, last)
        progress(f"gold weeks {first}..{last} built")
    # Last: a week's conservation row is also the record that its silver and gold were built from `source`.
    write_sales_conservation(spark, settings, rows, first, last)
    return totals
