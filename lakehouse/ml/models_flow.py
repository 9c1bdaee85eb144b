"""Looking at and moving model versions by hand (`lakehouse models`): list, show, promote (the gate's
verdict is required unless forced) and roll back, each alias move recorded in the audit table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.errors import RegistryError, UsageError
from lakehouse.ml import promotion, registry
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HISTORY_COLUMNS = (
    "event_at",
    "action",
    "alias",
    "from_version",
    "to_version",
    "actor",
    "forced",
    "gate_passed",
    "reason",
    "gate_metrics",
)


def _version(name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return registry.client().get_model_version(name, version)
    except MlflowException as exc:
        raise UsageError(f"model {name} has no version {version}") from exc


def _aliases(name: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(registry.client().get_registered_model(name).aliases)
    except MlflowException as exc:
        raise UsageError(f"no registered model {name!r} yet; run `lakehouse train` first") from exc


def list_versions(name: str) -> list[dict[str, Any]]:
    by_version: dict[str, list[str]] = {}
    for alias, version in _aliases(name).items():
        by_version.setdefault(str(version), []).append(alias)
    out = []
    for mv in registry.client().search_model_versions(f"name='{name}'", order_by=["version_number DESC"]):
        passed, metrics = registry.gate_tags(mv.tags)
        out.append(
            {
                "version": str(mv.version),
                "aliases": sorted(by_version.get(str(mv.version), [])),
                "created": mv.creation_timestamp,
                "run_id": mv.run_id,
                "gate": "pending"
                if mv.tags.get("gate.passed") == "pending"
                else {None: "not gated", True: "passed", False: "failed"}[passed],
                "holdout_wape": metrics.get("challenger_wape"),
            }
        )
    return out


def show(name: str, version: str) -> dict[str, Any]:
    mv = _version(name, version)
    run = registry.client().get_run(mv.run_id)
    return {
        "version": str(mv.version),
        "aliases": [a for a, v in _aliases(name).items() if str(v) == str(mv.version)],
        "run_id": mv.run_id,
        "source": mv.source,
        "tags": dict(mv.tags),
        "metrics": {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith(("holdout_", "effect_", "cv_"))},
        "lineage": {k: v for k, v in sorted(run.data.tags.items()) if k.startswith(("lineage.", "contract."))}
        | {"git_commit": run.data.tags.get("git_commit"), "spark_master": run.data.tags.get("spark_master")},
    }


def promote(spark: SparkSession, settings: Settings, name: str, version: str, reason: str, force: bool) -> dict:
    """Point @champion at a version that passed the gate against the current champion (else --force)."""
    mv = _version(name, version)
    passed, metrics = registry.gate_tags(mv.tags)
    current = registry.alias_version(name, registry.CHAMPION)
    if current == str(version):
        raise UsageError(f"version {version} is already @champion")
    outdated = promotion.stale(metrics, current) if passed else None
    if passed is None:
        verdict = "was never gated"
    elif mv.tags.get("gate.passed") == "pending":
        verdict = f"waits for its effects gate (`lakehouse effects --model-version {version} --promote`)"
    elif outdated is not None:
        verdict = outdated
    else:
        verdict = f"failed the gate ({mv.tags.get('gate.reasons', '?')})"
    forced = not passed or outdated is not None
    if forced and not force:
        raise RegistryError(f"version {version} {verdict}; use --force to promote it anyway (recorded as forced)")
    event = registry.Event(
        name,
        registry.CHAMPION,
        "promote",
        current,
        str(version),
        reason,
        forced=forced,
        gate_passed=passed,
        gate_metrics=metrics or None,
        run_id=mv.run_id,
    )
    registry.move_alias(spark, settings, event)
    return {"model": name, "champion": str(version), "previous": current, "forced": forced}


def rollback(spark: SparkSession, settings: Settings, name: str, reason: str) -> dict:
    events = [r.asDict() for r in registry.history(spark, settings, name).collect()]
    chain = registry.champion_chain(events)
    current = registry.alias_version(name, registry.CHAMPION)
    if len(chain) < 2 or chain[-1] != current:
        raise RegistryError(f"no previous champion to roll back to (champion history: {' -> '.join(chain) or 'empty'})")
    target = chain[-2]
    passed, metrics = registry.gate_tags(_version(name, target).tags)
    event = registry.Event(
        name,
        registry.CHAMPION,
        "rollback",
        current,
        target,
        reason,
        gate_passed=passed,
        gate_metrics=metrics or None,
        run_id=_version(name, target).run_id,
    )
    registry.move_alias(spark, settings, event)
    return {"model": name, "champion": target, "previous": current}
