"""The promotion gate: a challenger replaces the champion only with evidence, on the same holdout.

Pure decisions over small dicts of metrics, so every rule is unit-tested without a registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lakehouse.ml_config import GateConfig


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
    metrics: dict[str, float]

    def summary(self) -> str:
        return "passed" if self.passed else "failed: " + "; ".join(self.reasons)


def decide(
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
    metrics = {"challenger_wape": challenger.wape, "challenger_bias": challenger.bias}
    if champion is not None:
        metrics |= {"champion_wape": champion.wape, "champion_bias": champion.bias}
        needed = champion.wape * (1 - cfg.min_improvement)
        if not challenger.wape <= needed:
            reasons.append(
                f"wape {challenger.wape:.4f} does not beat champion {champion.wape:.4f} by {cfg.min_improvement:.0%}"
            )
    return GateResult(passed=not reasons, reasons=tuple(reasons), metrics=metrics)
