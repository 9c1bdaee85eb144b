"""What the commands print about a back-test (no pyspark: `lakehouse backtest --show` reads with delta-rs)."""

from __future__ import annotations

from typing import Any

ALL = "ALL"


def overall(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["brand"] == ALL and r["action"] == ALL), None)


def summary_line(rows: list[dict[str, Any]]) -> str:
    """One line: promotions, weeks, mean predicted vs realised and the slope (what `make run` prints)."""
    r = overall(rows)
    if r is None:
        return "no promotion in the back-test weeks"
    interval = (
        f" [{r['realised_pct_low']:+.1f}%, {r['realised_pct_high']:+.1f}%]" if r["realised_pct_low"] is not None else ""
    )
    slope = "n/a" if r["slope"] is None else f"{r['slope']:.2f}"
    if r["slope_low"] is not None:
        slope += f" [{r['slope_low']:.2f}, {r['slope_high']:.2f}]"
    return (
        f"{r['promotions']} promotions over {r['weeks']} weeks ({r['did_share']:.0%} against control outlets): "
        f"predicted {r['predicted_pct']:+.1f}%, realised {r['realised_pct']:+.1f}%{interval}, slope {slope}"
    )


def table(rows: list[dict[str, Any]]) -> str:
    """The calibration rows as an aligned table, overall first."""
    header = f"{'brand':<24} {'action':<16} {'promotions':>10} {'predicted':>10} {'realised':>26} {'slope':>20}"
    lines = [header]
    order = sorted(rows, key=lambda r: (r["brand"] != "ALL", r["brand"], r["action"] != "ALL", r["action"]))
    for r in order:
        realised = f"{r['realised_pct']:+.1f}%"
        if r["realised_pct_low"] is not None:
            realised += f" [{r['realised_pct_low']:+.1f}, {r['realised_pct_high']:+.1f}]"
        slope = "" if r["slope"] is None else f"{r['slope']:.2f}"
        if r["slope_low"] is not None:
            slope += f" [{r['slope_low']:.2f}, {r['slope_high']:.2f}]"
        lines.append(
            f"{r['brand']:<24} {r['action']:<16} {r['promotions']:>10} {r['predicted_pct']:>+9.1f}% "
            f"{realised:>26} {slope:>20}"
        )
    return "\n".join(lines)
