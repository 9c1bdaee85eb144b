"""A monitored week's figures as checks (rows of gold_monitoring), their statuses and how they are graded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
