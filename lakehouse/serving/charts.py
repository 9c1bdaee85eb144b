"""The pages' charts as geometry: scales and coordinates computed here, drawn as inline SVG by templates/charts.html.

No script and no asset: the page arrives with its charts drawn. Two shapes: horizontal bars with an interval
(an outlet's actions and their expected net lift), and figures by week with their intervals and the
thresholds they are graded against (realised lift, drift share, WAPE, bias). Every number on a chart is
also in a table beside it, so nothing is shown only as a picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

WIDTH = 640
LABEL_WIDTH = 170  # left of the bars: "P1 deal" labels
ROW_HEIGHT = 26
WEEK_HEIGHT = 220
MARGIN = 28


@dataclass(frozen=True)
class Scale:
    """Maps [low, high] onto [start, end] (pixels; end < start for a y axis, which grows downwards)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return round(self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start), 1)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round numbers (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [round(first + i * step, 10) for i in range(math.ceil((high - first) / step) + 1)]


def _extent(values: Sequence[float | None]) -> tuple[float, float]:
    """The ticks' range over `values` and zero (a bar starts at zero; a chart without numbers is 0 to 1)."""
    numbers = [v for v in values if v is not None] + [0.0]
    low, high = min(numbers), max(numbers)
    if high == low:
        high = low + 1.0
    ticks = nice_ticks(low, high)
    return ticks[0], ticks[-1]


def label(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


@dataclass(frozen=True)
class Bar:
    label: str
    y: float  # top of the bar
    x: float  # left end (zero, or the value when negative)
    width: float
    low_x: float | None  # the interval's ends, None when there is no interval
    high_x: float | None
    text: str  # "12.30 [8.10, 16.50]"


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    zero_x: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, text)
    bar_height: float = ROW_HEIGHT * 0.6


def interval_bars(items: Sequence[tuple[str, float | None, float | None, float | None]]) -> BarChart:
    """Bars of (label, value, low, high), top to bottom in the order given."""
    low, high = _extent([v for _, *numbers in items for v in numbers])
    x = Scale(low, high, LABEL_WIDTH, WIDTH - MARGIN)
    bars = []
    for i, (name, value, lo, hi) in enumerate(items):
        v = value or 0.0
        left, right = sorted((x(0.0), x(v)))
        ends: tuple[float | None, float | None] = (None, None)
        text = label(value)
        if lo is not None and hi is not None:
            ends, text = (x(lo), x(hi)), f"{text} [{label(lo)}, {label(hi)}]"
        bars.append(Bar(name, MARGIN + i * ROW_HEIGHT, left, round(right - left, 1), *ends, text))
    ticks = [(x(t), label(t)) for t in nice_ticks(low, high)]
    return BarChart(WIDTH, 2 * MARGIN + ROW_HEIGHT * len(items), x(0.0), bars, ticks)


@dataclass(frozen=True)
class Series:
    """One figure by week: its values, optional interval, and each point's status (css class)."""

    name: str
    values: Sequence[float | None]
    lows: Sequence[float | None] | None = None
    highs: Sequence[float | None] | None = None
    statuses: Sequence[str] | None = None


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    low_y: float | None
    high_y: float | None
    status: str
    text: str  # the tooltip: "2024-03-04 drift share: 0.42"


@dataclass(frozen=True)
class WeekChart:
    width: int
    height: int
    left: float
    right: float
    zero_y: float
    weeks: list[tuple[float, str]]  # (x, "2024-03-04") under the axis
    ticks: list[tuple[float, str]]  # (y, text)
    series: list[tuple[str, list[Point]]] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # SVG polyline points of each threshold line


def week_chart(
    weeks: Sequence[date], series: Sequence[Series], limits: Sequence[Sequence[float | None]] = ()
) -> WeekChart:
    """Points of each series by week (with interval whiskers), and threshold lines joining each week's limit."""
    numbers = [v for s in series for vs in (s.values, s.lows or (), s.highs or ()) for v in vs]
    low, high = _extent([*numbers, *(v for line in limits for v in line)])
    left, right = MARGIN + 36, WIDTH - MARGIN
    step = (right - left) / max(len(weeks), 1)
    y = Scale(low, high, WEEK_HEIGHT - MARGIN, MARGIN)

    def x(i: int, offset: float = 0.0) -> float:
        return round(left + step * (i + 0.5) + offset, 1)

    drawn = []
    for k, s in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * 8  # side by side, so two intervals of a week do not overlap
        points = []
        for i, value in enumerate(s.values):
            if value is None:
                continue
            lo = s.lows[i] if s.lows else None
            hi = s.highs[i] if s.highs else None
            text = f"{weeks[i]} {s.name}: {label(value)}" + (f" [{label(lo)}, {label(hi)}]" if lo is not None else "")
            status = s.statuses[i] if s.statuses else f"series-{k}"
            points.append(Point(x(i, offset), y(value), _maybe(y, lo), _maybe(y, hi), status, text))
        drawn.append((s.name, points))
    lines = [" ".join(f"{x(i)},{y(v)}" for i, v in enumerate(line) if v is not None) for line in limits]
    labels = [(x(i), w.isoformat()) for i, w in enumerate(weeks)]
    every = max(1, math.ceil(len(labels) / 8))  # at most 8 week labels fit under the axis
    return WeekChart(
        WIDTH,
        WEEK_HEIGHT + MARGIN,
        left,
        right,
        y(0.0),
        labels[::every],
        [(y(t), label(t)) for t in nice_ticks(low, high)],
        drawn,
        lines,
    )


def _maybe(scale: Scale, value: float | None) -> float | None:
    return None if value is None else scale(value)
