"""Effects for people: the brand x effect table `lakehouse effects` and `make run` print, and the run's plot."""

from __future__ import annotations

import re
from typing import Any

ALL = "ALL"
METHODS = ("dml", "fixed_effects")


def metric_name(brand: str) -> str:
    """A brand as an MLflow metric name part (letters, digits and underscores)."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", brand).strip("_").lower()


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row["estimate"] is None:
        return row["status"]
    return f"{row['estimate']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"


def table(rows: list[dict[str, Any]], segment: str = ALL) -> str:
    """One line per brand and effect of the segment: double ML and fixed effects side by side, with intervals.

    Prices are elasticities; promotions and the dip are log points (100 * (exp(b) - 1) percent).
    """
    by_key = {(r["brand"], r["effect"], r["method"]): r for r in rows if r["segment"] == segment}
    keys = sorted({(b, e) for b, e, _ in by_key}, key=lambda k: (k[0], _order(k[1])))
    header = f"{'brand':<24} {'effect':<28} {'double ML [95% CI]':<26} {'fixed effects [95% CI]':<26}"
    lines = [f"effects (segment {segment}; prices: elasticities, promotions: log points)", header]
    for brand, effect in keys:
        cells = [_cell(by_key.get((brand, effect, m))) for m in METHODS]
        lines.append(f"{brand[:24]:<24} {effect[:28]:<28} {cells[0]:<26} {cells[1]:<26}")
    return "\n".join(lines)


def forecast_line(metrics: dict[str, float]) -> str:
    """The forecast's own what-ifs on the holdout (the training run's `effect_*` metrics), labelled as such.

    Beside the effects they show how far a forecast's answer to "what if" is from a causal effect.
    """
    parts = []
    if "effect_price_elasticity" in metrics:
        parts.append(f"price elasticity {metrics['effect_price_elasticity']:+.2f}")
    for promo in ("deal", "feature", "display"):
        value = metrics.get(f"effect_{promo}_lift")
        if value is not None and value == value:  # NaN: the holdout never had the promotion
            parts.append(f"{promo} {100 * value:+.0f}%")
    return "forecast what-if on the holdout, not a causal effect: " + (", ".join(parts) or "none logged")


def _order(effect: str) -> tuple[int, str]:
    first = ("own_price", "deal", "feature", "display", "post_promotion_dip")
    return (first.index(effect), "") if effect in first else (len(first), effect)


def log_plot(rows: list[dict[str, Any]]) -> None:
    """A coefficient plot (estimate and interval per brand, by method) for each of the main effects."""
    import mlflow
    from matplotlib.figure import Figure  # not pyplot: its global state is not thread-safe (the back-test plots too)

    shown = ("own_price", "deal", "feature", "post_promotion_dip")
    fig = Figure(figsize=(4 * len(shown), 5))
    axes = fig.subplots(1, len(shown), sharey=True)
    brands = sorted({r["brand"] for r in rows})
    for ax, effect in zip(axes, shown, strict=True):
        for offset, method in ((-0.15, "dml"), (0.15, "fixed_effects")):
            pts = [
                (i + offset, r["estimate"], r["ci_low"], r["ci_high"])
                for i, b in enumerate(brands)
                for r in rows
                if r["brand"] == b
                and r["effect"] == effect
                and r["method"] == method
                and r["segment"] == ALL
                and r["estimate"] is not None
            ]
            if pts:
                y, est, lo, hi = zip(*pts, strict=True)
                err = [
                    [e - low for e, low in zip(est, lo, strict=True)],
                    [high - e for e, high in zip(est, hi, strict=True)],
                ]
                ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, label=method)
        ax.axvline(0.0, color="grey", linewidth=1)
        ax.set_title(effect)
    axes[0].set_yticks(range(len(brands)), brands)
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    mlflow.log_figure(fig, "effects/coefficients.png")
