"""What the commands print about recommendations, the same whichever engine read them (Spark or Arrow).

No pyspark here: `lakehouse recommendations` reads with delta-rs and must not pay for a JVM, while
`lakehouse score` prints the same lines from the Spark frame it has just written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.policy import AS_PLANNED

if TYPE_CHECKING:
    import pyarrow as pa

# A recommendation's lift: gross units and percent with their interval, then net of the category's
# cannibalised and post-promotion units.
LIFT_COLUMNS = (
    "lift_units",
    "lift_pct",
    "lift_pct_low",
    "lift_pct_high",
    "net_lift_units",
    "net_lift_units_low",
    "net_lift_units_high",
)
TOP_COLUMNS = (
    "outlet_id",
    "product_id",
    "brand",
    "action",
    "unit_price",
    "price_change",
    *LIFT_COLUMNS,
    "incremental_margin",
    "margin_basis",
    "explanation",
    "runner_up",
    "runner_up_reason",
)
# Largest net lift first (the outlet's category-level lift); ties by outlet then product, so two runs print
# the same list.
TOP_ORDER = (("net_lift_units", "descending"), ("outlet_id", "ascending"), ("product_id", "ascending"))


def top_lift_line(row: Mapping[str, Any]) -> str:
    """One recommended action: price, gross lift with its interval, net lift, margin; then why, and the runner-up.

    The percent is null when nothing was planned to sell (0 units): the line then gives units only.
    """
    pct = (
        ""
        if row["lift_pct"] is None
        else f" ({row['lift_pct']:+.1f}% [{row['lift_pct_low']:+.1f}%, {row['lift_pct_high']:+.1f}%])"
    )
    net = (
        ""
        if row["net_lift_units"] is None
        else f", net {row['net_lift_units']:+.1f} [{row['net_lift_units_low']:+.1f}, {row['net_lift_units_high']:+.1f}]"
    )
    margin = (
        ""
        if row["incremental_margin"] is None
        else f", margin {row['incremental_margin']:+.2f} ({row['margin_basis']})"
    )
    price = f" at {row['unit_price']:.2f} ({row['price_change']:+.0%})"
    lines = [
        f"  {row['outlet_id']} {row['product_id']} ({row['brand']}): {row['action']}{price} "
        f"{row['lift_units']:+.1f} units{pct}{net}{margin}"
    ]
    if row.get("explanation"):
        lines.append(f"      why: {row['explanation']}")
    if row.get("runner_up"):
        lines.append(f"      runner-up {row['runner_up']}: {row['runner_up_reason']}")
    return "\n".join(lines)


def print_top_lifts(rows: Iterable[Mapping[str, Any]]) -> None:
    """Print rows already chosen and ordered as TOP_ORDER says (`top_lifts`, or score's Spark query)."""
    for row in rows:
        print(top_lift_line(row))


def top_lifts(recommendations: pa.Table, top: int) -> list[dict[str, Any]]:
    """The `top` rows with an action, largest lift first (the Arrow form of score's bounded Spark query).

    The contract requires lift_units and the keys, so Arrow's and Spark's null placements never differ here.
    """
    import pyarrow.compute as pc

    recommended = recommendations.filter(pc.field("action") != AS_PLANNED)
    ordered = recommended.sort_by(list(TOP_ORDER)).select(list(TOP_COLUMNS))
    return ordered.slice(0, max(top, 0)).to_pylist()
