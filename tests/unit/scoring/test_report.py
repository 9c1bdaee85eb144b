"""The top-lifts line `lakehouse score` and `lakehouse recommendations` print."""

from __future__ import annotations

from lakehouse.scoring.report import top_lift_line

ROW = {
    "outlet_id": "O1",
    "product_id": "P1",
    "brand": "B1",
    "action": "deal",
    "unit_price": 1.8,
    "price_change": -0.1,
    "lift_units": 4.0,
    "lift_pct_low": 8.0,
    "lift_pct_high": 17.0,
    "net_lift_units": 3.0,
    "net_lift_units_low": 1.0,
    "net_lift_units_high": 5.0,
    "margin_basis": "unit cost",
}


def test_a_line_gives_price_lift_interval_net_margin_why_and_runner_up():
    line = top_lift_line(
        {
            **ROW,
            "lift_pct": 12.5,
            "incremental_margin": 1.25,
            "explanation": "deal at 1.80 (...): own price -2.00 [-2.10, -1.90]",
            "runner_up": "price_-5pct",
            "runner_up_reason": "net lift 1.0, below the chosen action's 3.0",
        }
    )
    assert line.split("\n") == [
        "  O1 P1 (B1): deal at 1.80 (-10%) +4.0 units (+12.5% [+8.0%, +17.0%]), net +3.0 [+1.0, +5.0], "
        "margin +1.25 (unit cost)",
        "      why: deal at 1.80 (...): own price -2.00 [-2.10, -1.90]",
        "      runner-up price_-5pct: net lift 1.0, below the chosen action's 3.0",
    ]


def test_a_lift_over_a_plan_of_zero_units_has_no_percent():
    line = top_lift_line({**ROW, "lift_pct": None, "incremental_margin": None})
    assert line == "  O1 P1 (B1): deal at 1.80 (-10%) +4.0 units, net +3.0 [+1.0, +5.0]"
