"""The retraining decision: the week's quality against the champion, its drift, and the cooldown of requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

from lakehouse.monitoring.checks import DATA_DRIFT, FAIL, HEALTH_CHECKS, OK, QUALITY, WARN, Check, graded, rounded
from lakehouse.policy import RetrainingConfig


def quality_checks(metrics: dict[str, float], champion: dict[str, float], policy: RetrainingConfig) -> list[Check]:
    """WAPE and bias of the week (every row) vs the champion's holdout figures and the policy's limits."""
    wape_limit = champion["wape"] * (1.0 + policy.max_wape_increase)
    wape, bias = rounded(metrics["wape"]), rounded(metrics["bias"])
    return [
        Check(QUALITY, "wape", None, wape, rounded(wape_limit), graded(wape, wape_limit, wape_limit)),
        Check(
            QUALITY,
            "bias",
            None,
            bias,
            policy.max_abs_bias,
            graded(None if bias is None else abs(bias), policy.max_abs_bias, policy.max_abs_bias),
        ),
        Check(QUALITY, "champion_holdout_wape", None, rounded(champion["wape"])),
        Check(QUALITY, "champion_holdout_bias", None, rounded(champion["bias"])),
        Check(QUALITY, "rows", None, metrics["rows"]),
    ]


@dataclass(frozen=True)
class Decision:
    """What the week's figures mean for retraining."""

    causes: tuple[str, ...]  # what calls for retraining this week
    requested: tuple[str, ...]  # the causes not already requested within the cooldown
    cooldown: dict[str, date]  # cause -> week of the earlier request that holds it back
    blocked_by: tuple[str, ...]  # failed data-health checks: no retraining on bad data
    evidence: dict[str, Any]

    @property
    def retrain(self) -> bool:
        return bool(self.requested) and not self.blocked_by

    def summary(self) -> str:
        found = ", ".join(self.causes) or "no drift or quality cause"
        if self.blocked_by:
            verdict = f"retraining BLOCKED by failed data health ({', '.join(self.blocked_by)})"
        elif self.retrain:
            verdict = f"RETRAIN ({', '.join(self.requested)})"
        elif self.causes:
            held = ", ".join(f"{c} requested for week {w}" for c, w in self.cooldown.items())
            verdict = f"no new request: within the cooldown ({held})"
        else:
            verdict = "no retraining"
        return f"{verdict}; found: {found}"


def decide(
    checks: list[Check], earlier: list[tuple[date, list[str]]], week: date, policy: RetrainingConfig
) -> Decision:
    """Causes from the week's checks, minus those requested within the cooldown of another week.

    `earlier` holds the model's requests of other weeks (week, causes). Failed data health blocks.
    """
    failed = {(c.check_name, c.metric) for c in checks if c.column_name is None and c.status == FAIL}
    causes = []
    if (DATA_DRIFT, "drift_share") in failed:
        causes.append(DATA_DRIFT)
    if (QUALITY, "wape") in failed or (QUALITY, "bias") in failed:
        causes.append(QUALITY)
    cooldown = {}
    for cause in causes:
        held = [
            w for w, cs in earlier if cause in cs and w != week and abs((w - week).days) < 7 * policy.cooldown_weeks
        ]
        if held:
            cooldown[cause] = max(held)
    blocked = tuple(
        f"{c.check_name}:{c.column_name}" if c.column_name else c.check_name
        for c in checks
        if c.check_name in HEALTH_CHECKS and c.status == FAIL
    )
    evidence = {c.label: c.value for c in checks if c.status == FAIL}
    requested = tuple(c for c in causes if c not in cooldown)
    return Decision(tuple(causes), requested, cooldown, blocked, evidence)


# The decision's rows in gold_monitoring: (RETRAINING, REQUESTED) is 1.0 when the week requests retraining.
RETRAINING, REQUESTED = "retraining", "requested"


def request_id(name: str, week: date) -> str:
    """One request per model and week: the id is derived from them, so a retried append is a no-op."""
    return hashlib.sha256(f"{name}:{week.isoformat()}".encode()).hexdigest()[:16]


def decision_checks(decision: Decision) -> list[Check]:
    """The decision as rows of the week, so the monitoring table tells the whole story (and a scheduler
    branches on it: lakehouse.monitoring.decisions)."""
    return [
        Check(RETRAINING, REQUESTED, None, float(decision.retrain), None, WARN if decision.retrain else OK),
        Check(RETRAINING, "blocked", None, float(bool(decision.blocked_by)), None, FAIL if decision.blocked_by else OK),
    ]
