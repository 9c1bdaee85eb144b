"""How a trained version becomes @champion: the gate's verdict, recorded on the version, then the alias move.

The gate has two halves (lakehouse.ml.gate). Training records the forecast half; when the effects half is
required (`gate.effects_required`), the verdict stays `pending` until the version's effects are
estimated and checked, and only a version whose whole gate passed is promoted without --force.

Tags on the model version (what `lakehouse models list/show/promote` read):
- gate.passed: true | false | pending
- gate.reasons: every refusal, forecast and effects ("-" when none)
- gate.metrics: the figures behind the verdict (JSON), including the champion it was compared with
- gate.forecast.passed / gate.forecast.reasons: the forecast half alone (kept to complete the verdict)
- gate.effects: pending | passed | failed | not required
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import SparkSession

from lakehouse.errors import RegistryError
from lakehouse.ml import registry
from lakehouse.ml.gate import GateResult
from lakehouse.settings import Settings

PENDING = "pending"
NOT_REQUIRED = "not required"


def record_forecast(name: str, version: str, gate: GateResult, effects_required: bool) -> GateResult:
    """Tag the forecast half's verdict; with effects required, a passing forecast leaves the gate pending."""
    effects = PENDING if effects_required else NOT_REQUIRED
    _tag(
        name,
        version,
        {
            "gate.forecast.passed": str(gate.passed).lower(),
            "gate.forecast.reasons": json.dumps(list(gate.reasons)),
            "gate.effects": effects,
        },
    )
    passed = gate.passed and not effects_required
    overall = "false" if not gate.passed else ("true" if passed else PENDING)
    _tag_verdict(name, version, overall, list(gate.reasons), gate.metrics)
    return GateResult(passed, gate.reasons, gate.metrics)


def record_effects(name: str, version: Any, reasons: list[str], metrics: dict[str, float]) -> GateResult:
    """Complete the version's verdict with the effects half; the forecast half is read from its tags."""
    tags = dict(version.tags)
    if "gate.forecast.passed" not in tags:
        raise RegistryError(
            f"version {version.version} has no forecast gate verdict (trained before the two-part gate): "
            "promote it with `lakehouse models promote --force`"
        )
    forecast_reasons = json.loads(tags["gate.forecast.reasons"])
    all_metrics = {**json.loads(tags.get("gate.metrics", "{}")), **metrics}
    passed = tags["gate.forecast.passed"] == "true" and not reasons
    _tag(name, str(version.version), {"gate.effects": "failed" if reasons else "passed"})
    _tag_verdict(name, str(version.version), str(passed).lower(), [*forecast_reasons, *reasons], all_metrics)
    return GateResult(passed, (*forecast_reasons, *reasons), all_metrics)


def recorded(version: Any) -> GateResult:
    """The verdict recorded on a version (pending counts as not passed)."""
    passed, metrics = registry.gate_tags(dict(version.tags))
    reasons = tuple(r for r in version.tags.get("gate.reasons", "-").split("; ") if r != "-")
    return GateResult(bool(passed), reasons, metrics)


def stale(gate_metrics: dict[str, Any], current: str | None) -> str | None:
    """Why a gate verdict no longer licenses promotion: it compared the version with another champion than
    the current one. None while it still holds. Both ways to promote (after training or effects, and
    `lakehouse models promote`) ask this."""
    gated_against = gate_metrics.get("champion_version")
    if gated_against == current:
        return None
    return f"was gated against version {gated_against}, not the current champion {current}"


def promote_gated(
    spark: SparkSession, settings: Settings, name: str, version: str, gate: GateResult, run_id: str
) -> None:
    """Move @champion to a version whose whole gate passed, unless the champion changed since it was gated."""
    current = registry.alias_version(name, registry.CHAMPION)
    why = stale(gate.metrics, current)
    if why is not None:
        raise RegistryError(f"version {version} {why} (@champion moved meanwhile); train again or promote by hand")
    reason = f"gate passed: wape {gate.metrics['challenger_wape']:.4f}"
    if "effects_estimated" in gate.metrics:
        reason += f", {gate.metrics['effects_estimated']:.0f} effects sane and stable"
    event = registry.Event(
        name,
        registry.CHAMPION,
        "promote",
        current,
        version,
        reason,
        gate_passed=True,
        gate_metrics=gate.metrics,
        run_id=run_id,
    )
    registry.move_alias(spark, settings, event)


def _tag_verdict(name: str, version: str, passed: str, reasons: list[str], metrics: dict[str, Any]) -> None:
    _tag(
        name,
        version,
        {
            "gate.passed": passed,
            "gate.reasons": "; ".join(reasons) or "-",
            "gate.metrics": json.dumps(metrics, sort_keys=True),
        },
    )


def _tag(name: str, version: str, tags: dict[str, str]) -> None:
    client = registry.client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
