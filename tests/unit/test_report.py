"""The top-lifts line `lakehouse score` and `lakehouse recommendations` print."""

from __future__ import annotations

from lakehouse.report import top_lift_line

ROW = {"outlet_id": "O1", "product_id": "P1", "brand": "B1", "action": "deal", "lift_units": 4.0}


def test_a_line_gives_units_percent_and_margin_when_known():
    line = top_lift_line({**ROW, "lift_pct": 12.5, "incremental_margin": 1.25})
    assert line == "  O1 P1 (B1): deal +4.0 units (+12.5%), margin +1.25"


def test_a_lift_over_a_plan_of_zero_units_has_no_percent():
    assert top_lift_line({**ROW, "lift_pct": None, "incremental_margin": None}) == "  O1 P1 (B1): deal +4.0 units"
