"""Full-table profiles and a bounded, stratified sample of a week, computed by Spark over every row.

Evidently then compares a sample of the week with a sample of the champion's reference of the same size,
so the driver holds at most about `sample_rows` rows per side, whatever the size of the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.contracts.model import Contract
from lakehouse.draws import uniform
from lakehouse.io.delta_io import count_by
from lakehouse.ml.model_inputs import KEYS
from lakehouse.monitoring.checks import MIN_PER_STRATUM, Check, rounded


def stratified_sample(df: DataFrame, strata: list[str], rows: int, salt: str) -> DataFrame:
    """About `rows` rows, each stratum in proportion to its size (at least MIN_PER_STRATUM rows or all).

    Rows are chosen by a hash of their keys, not a random draw, so the same data gives the same sample
    on every run and partitioning. Only the per-stratum counts reach the driver.
    """
    counts = count_by(df, *strata)
    total = sum(counts.values())
    if total == 0:
        return df
    fractions = [(*key, min(1.0, max(rows * n / total, min(n, MIN_PER_STRATUM)) / n)) for key, n in counts.items() if n]
    spark = df.sparkSession
    schema = ", ".join(f"`{c}` {dict(df.dtypes)[c]}" for c in strata) + ", _fraction double"
    fractions_df = spark.createDataFrame(fractions, schema)
    return (
        df.join(F.broadcast(fractions_df), on=strata, how="inner")
        .filter(uniform(0, salt, *KEYS) < F.col("_fraction"))
        .drop("_fraction")
    )


@dataclass(frozen=True)
class Profile:
    """Full-table figures of a frame, from one aggregation."""

    rows: int
    nulls: dict[str, int]
    stats: dict[str, dict[str, float | None]]
    violations: dict[str, int] = field(default_factory=dict)

    def null_rate(self, column: str) -> float | None:
        return self.nulls[column] / self.rows if self.rows else None


def profile(df: DataFrame, numeric: Iterable[str], columns: Iterable[str], contract: Contract | None = None) -> Profile:
    """Row count; null counts of `columns`; mean, std, min, max of `numeric`; contract rule violations.

    A rule's violation is a row where its expression is false (null counts as met: a missing value is
    the null check's business).
    """
    numeric, columns = list(numeric), list(dict.fromkeys(columns))
    aggs = [F.count(F.lit(1)).alias("rows")]
    aggs += [F.sum(F.col(c).isNull().cast("long")).alias(f"nulls:{c}") for c in columns]
    for c in numeric:
        x = F.col(c).cast("double")
        aggs += [
            F.avg(x).alias(f"mean:{c}"),
            F.stddev_samp(x).alias(f"std:{c}"),
            F.min(x).alias(f"min:{c}"),
            F.max(x).alias(f"max:{c}"),
        ]
    rules = [r for r in (contract.rules if contract else ()) if r.column is None or r.column in df.columns]
    aggs += [
        F.sum((~F.coalesce(F.expr(r.expression), F.lit(True))).cast("long")).alias(f"rule:{r.code}") for r in rules
    ]
    row = df.agg(*aggs).first()
    assert row is not None
    return Profile(
        rows=int(row["rows"]),
        nulls={c: int(row[f"nulls:{c}"] or 0) for c in columns},
        stats={c: {s: rounded(row[f"{s}:{c}"]) for s in ("mean", "std", "min", "max")} for c in numeric},
        violations={r.code: int(row[f"rule:{r.code}"] or 0) for r in rules},
    )


def summary_checks(current: Profile, numeric: list[str]) -> list[Check]:
    """Every monitored column's full-table statistics, kept for trends."""
    checks = []
    for column in numeric:
        checks.append(Check("summary", "null_rate", column, rounded(current.null_rate(column))))
        checks += [Check("summary", stat, column, value) for stat, value in current.stats[column].items()]
    return checks
