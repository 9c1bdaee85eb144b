"""What scoring may do to a row's plan: the candidate actions (plain data, no pyspark, so config can load them)."""

from __future__ import annotations

from dataclasses import dataclass

AS_PLANNED = "as_planned"


@dataclass(frozen=True)
class Action:
    """A change to a row's plan: a relative price change and promotions switched on (or off)."""

    name: str
    price_change: float = 0.0
    deal: bool | None = None
    feature: bool | None = None
    display: bool | None = None
