"""Week arithmetic and the clock: weeks run Monday to Sunday, as Spark's `date_trunc('week', ...)`."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from lakehouse.errors import UsageError


def monday(day: date) -> date:
    """The Monday starting the week of `day`."""
    return day - timedelta(days=day.weekday())


def week_range(first: date, last: date) -> tuple[date, date]:
    """Mondays of the first and last weeks touched by the dates; a clear error if reversed."""
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    return monday(first), monday(last)


def utc_now() -> datetime:
    """Naive UTC wall-clock time (Spark's session time zone is UTC). Only jobs and flows call this."""
    return datetime.utcnow().replace(microsecond=0)
