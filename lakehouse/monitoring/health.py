"""Data health of a week: freshness of every layer, volume against the trailing weeks, nulls and rules."""

from __future__ import annotations

from datetime import date, timedelta
from statistics import median

from lakehouse.contracts.model import Contract
from lakehouse.monitoring.checks import FAIL, INFO, OK, Check, graded, rounded
from lakehouse.monitoring.profile import Profile
from lakehouse.policy import MonitoringConfig


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
