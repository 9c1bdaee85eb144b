"""What the service serves, as one immutable snapshot: the latest scored week, the champion's effects, the lift.

A snapshot is built whole from table versions read at one moment, then swapped in by one reference
assignment (`Current.swap`). A request takes `Current.snapshot` once and answers from it alone, so no
response mixes two weeks or two champions, and the previous snapshot serves until the next is complete.

The week's recommendations stay an Arrow table (2M rows of 100k outlets x 20 products are about 0.5 GB
as Python dicts, a fraction of that as Arrow), ranked by net lift, with an index of each outlet's rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    effects: list[dict]
    lift: list[dict]
    champion: Champion
    versions: Versions
    loaded_at: datetime
    scored_at: datetime | None = None  # when the gold_recommendations version read was committed
    monitoring: tuple[MonitoredWeek, ...] = ()  # the model's health by week, oldest first (the /monitoring page)
    # The week's as-planned rows with the champion's serving flavour, or why the what-if cannot answer.
    what_if: WhatIfBook | str = "not loaded"


def _without_nan(table: pa.Table) -> pa.Table:
    """NaN doubles as nulls: JSON has no NaN, and a number that is not one is not shown."""
    for i, field in enumerate(table.schema):
        if pa.types.is_floating(field.type):
            column = table.column(i)
            table = table.set_column(i, field, pc.if_else(pc.is_nan(column), None, column))
    return table


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
    recommendations: pa.Table,
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
    effects and every week's lift (None: not written yet), and the monitored weeks."""
    if channels is None:
        with_channel = recommendations.append_column("channel", pa.nulls(recommendations.num_rows, pa.string()))
    else:
        with_channel = recommendations.join(channels.select(["outlet_id", "channel"]), "outlet_id")
    ranked = _without_nan(with_channel.sort_by(list(report.TOP_ORDER)).combine_chunks())
    return Snapshot(
        week=week,
        ranked=ranked,
        by_outlet=outlet_index(ranked),
        effects=[] if effects is None else records(_without_nan(effects.sort_by(EFFECT_ORDER))),
        lift=[] if lift is None else records(_without_nan(lift.sort_by(LIFT_ORDER))),
        champion=champion,
        versions=versions,
        loaded_at=loaded_at,
        scored_at=scored_at,
        monitoring=monitoring,
    )


def outlet_rows(snapshot: Snapshot, outlet_id: str) -> list[dict] | None:
    """One outlet's recommendations, largest net lift first; None for an outlet the week does not have."""
    rows = snapshot.by_outlet.get(outlet_id)
    return None if rows is None else records(snapshot.ranked.take(rows))


def ranked_rows(snapshot: Snapshot, brand: str | None, channel: str | None, top: int | None) -> pa.Table:
    """The week's recommendations of a brand and channel (None: any), largest net lift first, at most `top`."""
    table = snapshot.ranked
    if brand is not None:
        table = table.filter(pc.field("brand") == brand)
    if channel is not None:
        table = table.filter(pc.field("channel") == channel)
    return table if top is None else table.slice(0, top)


def page(rows: pa.Table, offset: int, limit: int) -> tuple[list[dict], int | None]:
    """Rows `offset` to `offset + limit` and the offset of the next page (None on the last)."""
    following = offset + limit
    return records(rows.slice(offset, limit)), following if following < rows.num_rows else None


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
