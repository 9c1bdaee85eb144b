"""Monitoring a week: drift of the champion's inputs and predictions, its quality, data health, and the
retraining decision they lead to.

Spark computes what needs every row: column statistics, WAPE and bias, freshness, volume, null and
out-of-range rates. Evidently compares a bounded, stratified sample of the week with a sample of the
champion's reference of the same size, so the driver holds at most about `sample_rows` rows per side,
whatever the size of the tables.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.contracts import Contract
from lakehouse.delta_io import count_by
from lakehouse.features import KEYS, LABEL
from lakehouse.ml_config import MonitoringConfig, RetrainingConfig
from lakehouse.modeling import PREDICTION
from lakehouse.sources.synthetic import uniform

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
DATA_DRIFT, PREDICTION_DRIFT, QUALITY = "data_drift", "prediction_drift", "quality"
HEALTH_CHECKS = ("freshness", "volume", "nulls", "range")
# A small stratum still gets this many rows (or all of its rows) into the sample, so a new cluster shows.
MIN_PER_STRATUM = 30


@dataclass(frozen=True)
class Check:
    """One measured figure of a week: a row of gold_monitoring without the week, model and reference."""

    check_name: str
    metric: str
    column_name: str | None
    value: float | None
    threshold: float | None = None
    status: str = INFO

    @property
    def label(self) -> str:
        return f"{self.check_name} {self.metric}" + (f" {self.column_name}" if self.column_name else "")


def rounded(value: Any) -> float | None:
    """Ten significant digits (sums over partitions differ in the last bits); None for missing or NaN."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else float(f"{number:.10g}")


def graded(value: float | None, warn: float, fail: float) -> str:
    """Status of a figure where larger is worse; a figure that cannot be computed fails."""
    if value is None:
        return FAIL
    return FAIL if value > fail else WARN if value > warn else OK


# --- Spark: samples and profiles over every row ---------------------------------------------------


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


# --- Data health --------------------------------------------------------------------------------------


def freshness_checks(latest: dict[str, date | None], delivered: date | None, week: date, max_lag: int) -> list[Check]:
    """Each table's latest week vs the latest week delivered (or the monitored week, if later).

    `latest` maps table names to their latest week, the first being the raw deliveries: that one is
    compared with the monitored week only (has the week been delivered at all?).
    """
    expected = max(week, delivered) if delivered else week
    checks = []
    for i, (table, last) in enumerate(latest.items()):
        target = week if i == 0 else expected
        lag = None if last is None else max(0.0, (target - last).days / 7)
        status = FAIL if lag is None or lag > max_lag else OK
        checks.append(Check("freshness", "lag_weeks", table, lag, float(max_lag), status))
    return checks


def volume_check(counts: dict[date, int], week: date, trailing: int, warn: float, fail: float) -> Check:
    """The week's row count vs the median of the `trailing` weeks before it (relative change)."""
    before = [counts.get(week - timedelta(weeks=k), 0) for k in range(1, trailing + 1)]
    before = [n for n in before if n > 0]
    if not before:  # nothing to compare with: the first weeks of a table
        return Check("volume", "relative_change", None, None, None, INFO)
    change = counts.get(week, 0) / median(before) - 1.0
    return Check("volume", "relative_change", None, rounded(change), fail, graded(abs(change), warn, fail))


def contract_checks(
    current: Profile, reference: Profile, contract: Contract, features: list[str], cfg: MonitoringConfig
) -> list[Check]:
    """Null rates vs the contract and the reference; rule violation rates.

    A required column allows no null. An optional model feature may have as many as in the reference
    (plus a margin); other optional columns, like next week's label, are null by design and not graded.
    """
    checks = []
    for column in contract.columns:
        if column.name not in current.nulls or not (column.required or column.name in features):
            continue
        rate = current.null_rate(column.name)
        if column.required:
            checks.append(Check("nulls", "null_rate", column.name, rounded(rate), 0.0, FAIL if rate else OK))
            continue
        base = reference.null_rate(column.name) or 0.0
        increase = None if rate is None else rate - base
        status = graded(increase, cfg.null_rate_warn, cfg.null_rate_fail)
        checks.append(
            Check("nulls", "null_rate", column.name, rounded(rate), rounded(base + cfg.null_rate_fail), status)
        )
    for code, bad in current.violations.items():
        rate = bad / current.rows if current.rows else None
        checks.append(Check("range", "violation_rate", code, rounded(rate), 0.0, FAIL if rate else OK))
    return checks


def summary_checks(current: Profile, numeric: list[str]) -> list[Check]:
    """Every monitored column's full-table statistics, kept for trends."""
    checks = []
    for column in numeric:
        checks.append(Check("summary", "null_rate", column, rounded(current.null_rate(column))))
        checks += [Check("summary", stat, column, value) for stat, value in current.stats[column].items()]
    return checks


def quality_checks(metrics: dict[str, float], champion: dict[str, float], policy: RetrainingConfig) -> list[Check]:
    """WAPE and bias of the week (every row) vs the champion's holdout figures and the policy's limits."""
    wape_limit = champion["wape"] * (1.0 + policy.max_wape_increase)
    wape, bias = rounded(metrics["wape"]), rounded(metrics["bias"])
    return [
        Check(QUALITY, "wape", None, wape, rounded(wape_limit), graded(wape, wape_limit, wape_limit)),
        Check(
            QUALITY,
            "bias",
            None,
            bias,
            policy.max_abs_bias,
            graded(None if bias is None else abs(bias), policy.max_abs_bias, policy.max_abs_bias),
        ),
        Check(QUALITY, "champion_holdout_wape", None, rounded(champion["wape"])),
        Check(QUALITY, "champion_holdout_bias", None, rounded(champion["bias"])),
        Check(QUALITY, "rows", None, metrics["rows"]),
    ]


# --- Evidently on the samples ---------------------------------------------------------------------


def _evidently_data(reference: Any, current: Any, numeric: list[str], categorical: list[str]) -> tuple[Any, Any]:
    from evidently import DataDefinition, Dataset, Regression

    definition = DataDefinition(
        numerical_columns=[*numeric, PREDICTION, LABEL],
        categorical_columns=categorical,
        regression=[Regression(target=LABEL, prediction=PREDICTION)],
    )
    return (
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def _run(metrics: list[Any], current: Any, reference: Any) -> Any:
    from evidently import Report

    with warnings.catch_warnings():  # correlations of constant columns divide by zero; harmless
        warnings.simplefilter("ignore")
        return Report(metrics, include_tests=True).run(current, reference)


def _value_drifts(snapshot: Any) -> dict[str, tuple[float | None, float]]:
    """column -> (distance, threshold) of every ValueDrift in a report."""
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            out[config["column"]] = (rounded(metric["value"]), float(config["threshold"]))
    return out


@dataclass
class Reports:
    """Evidently snapshots by report name, and the figures they add to the week."""

    snapshots: dict[str, Any]
    checks: list[Check]


def evidently_reports(
    reference: Any,
    current: Any,
    numeric: list[str],
    categorical: list[str],
    cfg: MonitoringConfig,
    policy: RetrainingConfig,
) -> Reports:
    """Data drift of the features, drift of predictions and actuals, and regression quality, on samples.

    A column with no value on one side is drifted without a distance (Evidently cannot compare it);
    with no value on either side it is left out.
    """
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, RegressionPreset

    def filled(c: str) -> tuple[bool, bool]:
        return bool(reference[c].notna().any()), bool(current[c].notna().any())

    comparable = [c for c in numeric + categorical if all(filled(c))]
    one_sided = [c for c in numeric + categorical if any(filled(c)) and not all(filled(c))]
    methods = {c: cfg.numeric_method if c in numeric else cfg.categorical_method for c in comparable}
    cur, ref = _evidently_data(
        reference, current, [c for c in numeric if c in comparable], [c for c in categorical if c in comparable]
    )
    drift = _run(
        [
            DataDriftPreset(
                columns=comparable,
                per_column_method=methods,
                per_column_threshold={c: cfg.drift_threshold for c in comparable},
                drift_share=policy.drift_share,
            )
        ],
        cur,
        ref,
    )
    checks = []
    distances = _value_drifts(drift)
    drifted = 0
    for column in comparable:
        value, threshold = distances[column]
        is_drifted = value is not None and value >= threshold
        drifted += is_drifted
        checks.append(Check(DATA_DRIFT, methods[column], column, value, threshold, WARN if is_drifted else OK))
    checks += [Check(DATA_DRIFT, "no_values", c, None, None, WARN) for c in one_sided]
    drifted += len(one_sided)
    monitored = len(comparable) + len(one_sided)
    share = rounded(drifted / monitored) if monitored else 0.0
    checks += [
        Check(DATA_DRIFT, "drifted_columns", None, float(drifted)),
        Check(
            DATA_DRIFT,
            "drift_share",
            None,
            share,
            policy.drift_share,
            FAIL if (share or 0) > policy.drift_share else OK,
        ),
    ]
    outputs = _run(
        [ValueDrift(column=c, method=cfg.numeric_method, threshold=cfg.drift_threshold) for c in (PREDICTION, LABEL)],
        cur,
        ref,
    )
    for column, (value, threshold) in _value_drifts(outputs).items():
        status = WARN if value is not None and value >= threshold else OK
        checks.append(Check(PREDICTION_DRIFT, cfg.numeric_method, column, value, threshold, status))
    quality = _run([RegressionPreset()], cur, ref)
    for metric in quality.dict()["metrics"]:
        name = metric["metric_name"].split("(")[0]
        value = metric["value"]
        if isinstance(value, dict):  # {mean, std}: keep the mean
            value = value.get("mean")
        if isinstance(value, int | float):
            checks.append(Check(QUALITY, f"sample_{name.lower()}", None, rounded(value)))
    return Reports({DATA_DRIFT: drift, PREDICTION_DRIFT: outputs, QUALITY: quality}, checks)


# --- The retraining decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What the week's figures mean for retraining."""

    causes: tuple[str, ...]  # what calls for retraining this week
    requested: tuple[str, ...]  # the causes not already requested within the cooldown
    cooldown: dict[str, date]  # cause -> week of the earlier request that holds it back
    blocked_by: tuple[str, ...]  # failed data-health checks: no retraining on bad data
    evidence: dict[str, Any]

    @property
    def retrain(self) -> bool:
        return bool(self.requested) and not self.blocked_by

    def summary(self) -> str:
        found = ", ".join(self.causes) or "no drift or quality cause"
        if self.blocked_by:
            verdict = f"retraining BLOCKED by failed data health ({', '.join(self.blocked_by)})"
        elif self.retrain:
            verdict = f"RETRAIN ({', '.join(self.requested)})"
        elif self.causes:
            held = ", ".join(f"{c} requested for week {w}" for c, w in self.cooldown.items())
            verdict = f"no new request: within the cooldown ({held})"
        else:
            verdict = "no retraining"
        return f"{verdict}; found: {found}"


def decide(
    checks: list[Check], earlier: list[tuple[date, list[str]]], week: date, policy: RetrainingConfig
) -> Decision:
    """Causes from the week's checks, minus those requested within the cooldown of another week.

    `earlier` holds the model's requests of other weeks (week, causes). Failed data health blocks.
    """
    failed = {(c.check_name, c.metric) for c in checks if c.column_name is None and c.status == FAIL}
    causes = []
    if (DATA_DRIFT, "drift_share") in failed:
        causes.append(DATA_DRIFT)
    if (QUALITY, "wape") in failed or (QUALITY, "bias") in failed:
        causes.append(QUALITY)
    cooldown = {}
    for cause in causes:
        held = [
            w for w, cs in earlier if cause in cs and w != week and abs((w - week).days) < 7 * policy.cooldown_weeks
        ]
        if held:
            cooldown[cause] = max(held)
    blocked = tuple(
        f"{c.check_name}:{c.column_name}" if c.column_name else c.check_name
        for c in checks
        if c.check_name in HEALTH_CHECKS and c.status == FAIL
    )
    evidence = {c.label: c.value for c in checks if c.status == FAIL}
    requested = tuple(c for c in causes if c not in cooldown)
    return Decision(tuple(causes), requested, cooldown, blocked, evidence)


def decision_checks(decision: Decision) -> list[Check]:
    """The decision as rows of the week, so the monitoring table tells the whole story."""
    return [
        Check("retraining", "requested", None, float(decision.retrain), None, WARN if decision.retrain else OK),
        Check(
            "retraining", "blocked", None, float(bool(decision.blocked_by)), None, FAIL if decision.blocked_by else OK
        ),
    ]
