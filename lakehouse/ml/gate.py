"""The promotion gate: a challenger replaces the champion only with evidence.

Two halves, both pure decisions over small dicts, so every rule is unit-tested without a registry:
- `decide_forecast`: the forecast, on the same holdout as the champion and the baselines;
- `decide_effects`: the causal effects estimated for the challenger (gold_effects rows), for sanity
  (signs economics requires) and stability (against the champion's effects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lakehouse.ml import backtest_summary
from lakehouse.policy import GateConfig


@dataclass(frozen=True)
class Evidence:
    """One model's figures on the holdout: overall metrics and WAPE per outlet segment."""

    wape: float
    bias: float
    invalid_predictions: float
    segments: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float | str | None]  # figures, and the champion version compared with (None: none)

    def summary(self) -> str:
        return "passed" if self.passed else "failed: " + "; ".join(self.reasons)


def decide_forecast(
    challenger: Evidence,
    champion: Evidence | None,
    baselines: dict[str, float],
    baseline_segments: dict[str, float],
    cfg: GateConfig,
) -> GateResult:
    """Guardrails first (valid predictions, bias, baselines), then the comparison with the champion.

    Without a champion, segments are compared with the best baseline in each segment instead.
    """
    reasons = []
    if challenger.invalid_predictions > 0 or math.isnan(challenger.wape):
        reasons.append(f"{challenger.invalid_predictions:.0f} NaN or null predictions")
    if abs(challenger.bias) > cfg.max_abs_bias:
        reasons.append(f"bias {challenger.bias:+.3f} outside +-{cfg.max_abs_bias}")
    if cfg.must_beat_baselines:
        beaten = [name for name, wape in baselines.items() if not challenger.wape < wape]
        if beaten:
            reasons.append("does not beat baseline " + ", ".join(f"{n} ({baselines[n]:.4f})" for n in beaten))
    reference = champion.segments if champion else baseline_segments
    for segment, wape in sorted(challenger.segments.items()):
        ref = reference.get(segment)
        if ref is not None and wape > ref * (1 + cfg.segment_tolerance):
            reasons.append(
                f"segment {segment}: wape {wape:.4f} worse than {ref:.4f} by more than {cfg.segment_tolerance:.0%}"
            )
    metrics: dict[str, float | str | None] = {"challenger_wape": challenger.wape, "challenger_bias": challenger.bias}
    if champion is not None:
        metrics |= {"champion_wape": champion.wape, "champion_bias": champion.bias}
        needed = champion.wape * (1 - cfg.min_improvement)
        if not challenger.wape <= needed:
            reasons.append(
                f"wape {challenger.wape:.4f} does not beat champion {champion.wape:.4f} by {cfg.min_improvement:.0%}"
            )
    return GateResult(passed=not reasons, reasons=tuple(reasons), metrics=metrics)


# Training/serving consistency: the serving flavour's predictions may differ from the Spark model's by this much
# (relative) on the sample both score at registration.
PARITY_TOLERANCE = 1e-6


def decide_parity(metrics: dict[str, float]) -> list[str]:
    """Refusal reasons from the flavours' parity check (`lakehouse.ml.serving_flavour.parity`); none when it
    held, or when the model has no serving flavour (then `metrics` is empty and the what-if API cannot serve it)."""
    if "parity_max_rel_diff" not in metrics:
        return []
    worst, rows = metrics["parity_max_rel_diff"], metrics["parity_rows"]
    if rows == 0:
        return ["serving flavour: parity not checked (no holdout rows to score)"]
    if not worst <= PARITY_TOLERANCE:
        return [
            f"serving flavour: its predictions differ from the Spark model's by up to {worst:.3g} (relative) on "
            f"{rows:.0f} holdout rows (more than {PARITY_TOLERANCE:g})"
        ]
    return []


# The effects the sanity and stability rules read: double ML (what recommendations use), all outlets.
EFFECTS_METHOD, EFFECTS_SEGMENT, OWN_PRICE = "dml", "ALL", "own_price"
PROMOTIONS = ("deal", "feature", "display")


def decide_effects(
    challenger: list[dict[str, Any]], champion: list[dict[str, Any]] | None, cfg: GateConfig
) -> tuple[list[str], dict[str, float]]:
    """Refusal reasons (each naming the brand and the effect) and the figures behind them.

    Sanity: every estimated own-price elasticity is negative; no promotion effect is negative beyond
    noise (its whole interval below -promotion_tolerance log points). Stability, against the champion's
    effects when it has any: no elasticity changes sign or moves by more than max_elasticity_change.
    Unsupported effects are not estimated, so no rule reads them.
    """
    mine = _estimated(challenger)
    reasons = []
    if not mine:
        reasons.append("effects: none estimated for the challenger (run `lakehouse effects`)")
    for (brand, effect), row in sorted(mine.items()):
        if effect == OWN_PRICE and not row["estimate"] < 0:
            reasons.append(f"effects: {brand} own_price elasticity {row['estimate']:+.2f} is not negative")
        if effect in PROMOTIONS and row["ci_high"] < -cfg.promotion_tolerance:
            reasons.append(
                f"effects: {brand} {effect} {row['estimate']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
                f" is negative beyond noise (whole interval below -{cfg.promotion_tolerance})"
            )
    theirs = _estimated(champion or [])
    moves = []
    for (brand, effect), row in sorted(mine.items()):
        before = theirs.get((brand, effect))
        if effect != OWN_PRICE or before is None:
            continue
        move = row["estimate"] - before["estimate"]
        moves.append(abs(move))
        if (row["estimate"] < 0) != (before["estimate"] < 0):
            reasons.append(
                f"effects: {brand} own_price elasticity changes sign: "
                f"{before['estimate']:+.2f} -> {row['estimate']:+.2f}"
            )
        elif abs(move) > cfg.max_elasticity_change:
            reasons.append(
                f"effects: {brand} own_price elasticity moves {move:+.2f} from the champion's "
                f"{before['estimate']:+.2f} (more than {cfg.max_elasticity_change})"
            )
    metrics = {
        "effects_estimated": float(len(mine)),
        "effects_compared_brands": float(len(moves)),
        "effects_max_elasticity_move": max(moves, default=0.0),
    }
    return reasons, metrics


def _estimated(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["brand"], r["effect"]): r
        for r in rows
        if r["method"] == EFFECTS_METHOD and r["segment"] == EFFECTS_SEGMENT and r["estimate"] is not None
    }


def decide_backtest(rows: list[dict[str, Any]], cfg: GateConfig) -> tuple[list[str], dict[str, float]]:
    """Refusal reasons from the back-test (`lakehouse.ml.backtest`): the overall slope of realised on
    predicted lift further than `max_calibration_error` from 1. No rows, no slope or no limit: not checked."""
    overall = backtest_summary.overall(rows)
    if overall is None or overall["slope"] is None:
        return [], {}
    metrics = {"backtest_slope": float(overall["slope"]), "backtest_promotions": float(overall["promotions"])}
    limit = cfg.max_calibration_error
    if limit is not None and abs(overall["slope"] - 1.0) > limit:
        interval = "" if overall["slope_low"] is None else f" [{overall['slope_low']:.2f}, {overall['slope_high']:.2f}]"
        return [
            f"back-test: realised lift is {overall['slope']:.2f}{interval} x the predicted one over "
            f"{overall['promotions']} promotions (more than {limit} from 1)"
        ], metrics
    return [], metrics
