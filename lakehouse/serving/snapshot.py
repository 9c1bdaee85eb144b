"""What the service serves, as one immutable snapshot: the latest scored week, the champion's effects, the lift.

A snapshot is built whole from table versions read at one moment, then swapped in by one reference
assignment (`Current.swap`). A request takes `Current.snapshot` once and answers from it alone, so no
response mixes two weeks or two champions, and the previous snapshot serves until the next is complete.

The week's recommendations stay an Arrow table (2M rows of 100k outlets x 20 products are about 0.5 GB
as Python dicts, a fraction of that as Arrow), ranked by net lift, with an index of each outlet's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.io.delta_log import records
from lakehouse.scoring import report
from lakehouse.serving.model_health import MonitoredWeek

if TYPE_CHECKING:
    from lakehouse.serving.what_if import WhatIfBook

# The columns served of gold_recommendations (its lineage `inputs` and the candidates stay in the table);
# `channel` comes from silver_outlets.
RECOMMENDATION_COLUMNS = (
    "outlet_id",
    "product_id",
    "week_start",
    "brand",
    "action",
    "price_change",
    "planned_unit_price",
    "unit_price",
    "planned_units",
    "predicted_units",
    *report.LIFT_COLUMNS,
    "incremental_margin",
    "margin_basis",
    "reason",
    "explanation",
    "runner_up",
    "runner_up_reason",
    "in_holdout",
    "model_version",
)
EFFECT_COLUMNS = (
    "method",
    "brand",
    "segment",
    "effect",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "lift_pct",
    "lift_pct_low",
    "lift_pct_high",
    "confidence",
    "rows",
    "treated_share",
    "status",
    "identified_by",
)
MEASURED_LIFT_COLUMNS = (
    "week_start",
    "experiment",
    "brand",
    "method",
    "treated_outlets",
    "holdout_outlets",
    "treated_mean",
    "holdout_mean",
    "theta",
    "lift_units",
    "ci_low",
    "ci_high",
    "lift_pct",
    "ci_low_pct",
    "ci_high_pct",
    "mde_units",
    "mde_pct",
    "predicted_lift_units",
    "predicted_low",
    "predicted_high",
    "promise_kept",
    "confidence",
    "pre_weeks",
    "model_version",
)
EFFECT_ORDER = [("method", "ascending"), ("brand", "ascending"), ("segment", "ascending"), ("effect", "ascending")]
MAX_SELECTIONS = 256  # filtered listings kept per snapshot (brands x channels are a few dozen)
LIFT_ORDER = [("week_start", "ascending"), ("experiment", "ascending"), ("brand", "ascending")]


@dataclass(frozen=True)
class Champion:
    """The registry's @champion when the snapshot was read."""

    name: str
    version: str
    run_id: str
    registered_at: datetime


@dataclass(frozen=True)
class Versions:
    """What a snapshot was read from: a change in any of them means a new snapshot (None: table not written)."""

    recommendations: int
    effects: int | None
    lift: int | None
    outlets: int | None
    champion: str
    monitoring: int | None = None
    retrain_requests: int | None = None
    planned: int | None = None  # gold_planned_features (the what-if's rows)


@dataclass(frozen=True)
class Snapshot:
    week: date
    ranked: pa.Table  # the week's recommendations with their outlet's channel, largest net lift first
    by_outlet: Mapping[str, np.ndarray]  # row numbers in `ranked` of each outlet, in rank order
    reader: RowReader  # reads rows of `ranked` by number
    effects: list[dict]
    lift: list[dict]
    champion: Champion
    versions: Versions
    loaded_at: datetime
    scored_at: datetime | None = None  # when the gold_recommendations version read was committed
    monitoring: tuple[MonitoredWeek, ...] = ()  # the model's health by week, oldest first (the /monitoring page)
    # The week's as-planned rows with the champion's serving flavour, or why the what-if cannot answer.
    what_if: WhatIfBook | str = "not loaded"
    # (brand, channel) -> the row numbers of that listing, filled as listings are asked for (`selection`).
    selections: dict[tuple[str | None, str | None], np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def selection(self, brand: str | None, channel: str | None) -> np.ndarray:
        """Row numbers in `ranked` of a brand's and channel's recommendations (None: any), in rank order.

        Filtering 2M rows takes milliseconds, so each listing is filtered once per snapshot and its row
        numbers kept (4 bytes a row; at most MAX_SELECTIONS listings, as a filter's values come from callers).
        """
        key = (brand, channel)
        numbers = self.selections.get(key)
        if numbers is None:
            keep = pa.repeat(True, self.ranked.num_rows)
            for column, value in (("brand", brand), ("channel", channel)):
                if value is not None:
                    keep = pc.and_(keep, pc.fill_null(pc.equal(self.ranked.column(column), value), False))
            numbers = np.flatnonzero(keep.to_numpy(zero_copy_only=False)).astype(np.int32)
            if len(self.selections) < MAX_SELECTIONS:
                self.selections[key] = numbers  # a dict's item assignment is atomic: racing requests agree
        return numbers


def _without_nan(table: pa.Table) -> pa.Table:
    """NaN doubles as nulls: JSON has no NaN, and a number that is not one is not shown."""
    for i, column_field in enumerate(table.schema):
        if pa.types.is_floating(column_field.type):
            column = table.column(i)
            table = table.set_column(i, column_field, pc.if_else(pc.is_nan(column), None, column))
    return table


def compact(table: pa.Table) -> pa.Table:
    """The table with each column of few distinct values dictionary-encoded (at most one value in four rows
    distinct: a brand, a channel, an outlet's attributes repeated over its products, the week's constants),
    so a row holds a 4-byte index instead of the value. Readers see the same values (`to_pylist`, `take`,
    filters); `pa.Table.cast` to the original schema decodes them."""
    for i, column_field in enumerate(table.schema):
        kind = column_field.type
        if pa.types.is_boolean(kind) or pa.types.is_dictionary(kind) or pa.types.is_nested(kind):
            continue
        column = table.column(i).combine_chunks()
        encoded = pc.dictionary_encode(column)
        if len(encoded.dictionary) * 4 <= len(encoded) and encoded.nbytes < column.nbytes:
            table = table.set_column(i, column_field.name, encoded)
    return table


SMALL_DICTIONARY = 4096  # distinct values of a column kept as a Python list (a brand, an action, a channel)


class RowReader:
    """A few rows of a table at a time, by row number, as dicts: what `records(table.take(numbers))` gives of
    the table before `compact`, for a fraction of its cost.

    Each Arrow call costs about 10 us whatever its size, and taking, decoding and listing the rows made three
    or four per column: an outlet's 20 rows of 26 columns took 0.86 ms, most of a request (bench/RESULTS.md).
    Here the columns of numbers and of few distinct values are read with numpy indexing into arrays made
    once per snapshot; only the others (long texts, dates, flags) take one Arrow call each. Doubles read NaN
    as None, as the snapshot's tables hold none (`_without_nan`). Zoned timestamps are refused (`records`
    converts them)."""

    def __init__(self, table: pa.Table) -> None:
        self.names = tuple(table.column_names)
        self._columns = tuple(_column_reader(column) for column in table.columns)

    def rows(self, numbers: np.ndarray) -> list[dict]:
        columns = [read(numbers) for read in self._columns]
        return [dict(zip(self.names, values, strict=True)) for values in zip(*columns, strict=True)]


def _column_reader(column: pa.ChunkedArray) -> Callable[[np.ndarray], list]:
    """How to read one column's values at some row numbers (see `RowReader`). Only the columns read with
    numpy are made one array (a copy when in several chunks); the long texts stay as they are."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        raise ValueError(f"a zoned timestamp column ({kind}) is read with `records`, not a RowReader")
    numeric = pa.types.is_floating(kind) or (pa.types.is_integer(kind) and column.null_count == 0)
    if not (numeric or pa.types.is_dictionary(kind)):
        return lambda numbers: column.take(numbers).to_pylist()
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_dictionary(kind):
        values, indices = array.dictionary, array.indices
        codes = _without_nulls(indices, len(values))  # a null is the code one past the values
        if pa.types.is_floating(values.type):
            return _doubles(np.append(values.to_numpy(zero_copy_only=False), np.nan), codes)
        if len(values) <= SMALL_DICTIONARY:
            listed = [*values.to_pylist(), None]
            return lambda numbers: [listed[code] for code in codes[numbers].tolist()]
        return lambda numbers: values.take(indices.take(numbers)).to_pylist()
    if pa.types.is_floating(kind):
        return _doubles(_without_nulls(array, np.nan), None)
    integers = array.to_numpy()
    return lambda numbers: integers[numbers].tolist()


def _without_nulls(array: pa.Array, fill: float) -> np.ndarray:
    """The array's values as numpy, nulls as `fill`: Arrow's own buffer when it has no nulls (a copy of 2M
    codes per column would add hundreds of MB to the snapshot)."""
    return array.to_numpy() if array.null_count == 0 else pc.fill_null(array, fill).to_numpy()


def _doubles(values: np.ndarray, codes: np.ndarray | None) -> Callable[[np.ndarray], list]:
    def read(numbers: np.ndarray) -> list:
        picked = values[numbers if codes is None else codes[numbers]].tolist()
        return [None if value != value else value for value in picked]  # NaN is the only value unequal to itself

    return read


def outlet_index(ranked: pa.Table) -> dict[str, np.ndarray]:
    """Each outlet's row numbers, in the table's order (a stable sort by outlet, then runs of equal ids)."""
    if ranked.num_rows == 0:
        return {}
    order = pc.sort_indices(ranked, [("outlet_id", "ascending")]).to_numpy()
    runs = pc.run_end_encode(ranked.column("outlet_id").take(order).combine_chunks())
    ends = runs.run_ends.to_numpy()
    starts = np.concatenate([[0], ends[:-1]])
    return {outlet: order[s:e] for outlet, s, e in zip(runs.values.to_pylist(), starts, ends, strict=True)}


def build_snapshot(
    week: date,
    recommendations: pa.Table | Snapshot,
    channels: pa.Table | None,
    effects: pa.Table | None,
    lift: pa.Table | None,
    champion: Champion,
    versions: Versions,
    loaded_at: datetime,
    scored_at: datetime | None = None,
    monitoring: tuple[MonitoredWeek, ...] = (),
) -> Snapshot:
    """A snapshot of one week's recommendations (`channels`: outlet_id -> channel, if known), the champion's
    effects and every week's lift (None: not written yet), and the monitored weeks. `recommendations` may be
    a snapshot of the same week, whose ranking (and the listings filtered from it) the new one shares."""
    if isinstance(recommendations, Snapshot):
        kept = recommendations
        ranked, by_outlet, reader, selections = kept.ranked, kept.by_outlet, kept.reader, kept.selections
    else:
        # One table at a time, each step's input let go as its output is made (this frame's name included),
        # so building holds about two copies of the week at once, not one per step.
        table = _with_channel(recommendations, channels)
        del recommendations
        table = table.combine_chunks()
        table = _without_nan(table.take(pc.sort_indices(table, list(report.TOP_ORDER))))
        by_outlet = outlet_index(table)
        ranked, selections = compact(table), {}
        del table
        reader = RowReader(ranked)
    return Snapshot(
        week=week,
        ranked=ranked,
        by_outlet=by_outlet,
        reader=reader,
        effects=[] if effects is None else records(_without_nan(effects.sort_by(EFFECT_ORDER))),
        lift=[] if lift is None else records(_without_nan(lift.sort_by(LIFT_ORDER))),
        champion=champion,
        versions=versions,
        loaded_at=loaded_at,
        scored_at=scored_at,
        monitoring=monitoring,
        selections=selections,
    )


def _with_channel(recommendations: pa.Table, channels: pa.Table | None) -> pa.Table:
    """The rows with their outlet's channel (null for an outlet silver_outlets lacks): a lookup, not a join,
    which would copy every column of the week."""
    if channels is None:
        channel = pa.nulls(recommendations.num_rows, pa.string())
    else:
        at = pc.index_in(recommendations.column("outlet_id"), value_set=channels.column("outlet_id").combine_chunks())
        channel = channels.column("channel").take(at)
    return recommendations.append_column("channel", channel)


def outlet_rows(snapshot: Snapshot, outlet_id: str) -> list[dict] | None:
    """One outlet's recommendations, largest net lift first; None for an outlet the week does not have."""
    rows = snapshot.by_outlet.get(outlet_id)
    return None if rows is None else snapshot.reader.rows(rows)


@dataclass(frozen=True)
class Ranked:
    """A listing: the rows `numbers` of the snapshot's ranking (None: every row), in rank order, the first
    `num_rows` of them."""

    reader: RowReader
    numbers: np.ndarray | None
    num_rows: int


def ranked_rows(snapshot: Snapshot, brand: str | None, channel: str | None, top: int | None) -> Ranked:
    """The week's recommendations of a brand and channel (None: any), largest net lift first, at most `top`."""
    numbers = None if brand is None and channel is None else snapshot.selection(brand, channel)
    total = snapshot.ranked.num_rows if numbers is None else len(numbers)
    return Ranked(snapshot.reader, numbers, total if top is None else min(top, total))


def page(rows: Ranked, offset: int, limit: int) -> tuple[list[dict], int | None]:
    """Rows `offset` to `offset + limit` and the offset of the next page (None on the last)."""
    end = max(offset, min(offset + limit, rows.num_rows))
    numbers = np.arange(offset, end) if rows.numbers is None else rows.numbers[offset:end]
    following = offset + limit
    return rows.reader.rows(numbers), following if following < rows.num_rows else None


def lift_rows(snapshot: Snapshot, week: date | None) -> list[dict]:
    """Every measured week's lift, or one week's."""
    return [row for row in snapshot.lift if week is None or row["week_start"] == week]


class Current:
    """The snapshot being served (None until the first is loaded) and, while there is none, why."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.not_ready = "loading the tables and the champion"

    def swap(self, snapshot: Snapshot) -> None:
        """Serve `snapshot` from now on: one reference assignment, atomic for every reader."""
        self.snapshot = snapshot
