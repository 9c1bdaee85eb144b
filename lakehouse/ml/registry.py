"""Registry operations by alias (never stages), each recorded in version tags and the Delta audit table.

`@challenger` is the newest trained version; `@champion` is what scoring uses. Promotion and rollback
move `@champion` only. The audit table is the history: rollback walks it back to the champion before.
"""

from __future__ import annotations

import getpass
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse.contracts.model import load_contract
from lakehouse.errors import DataError
from lakehouse.io import delta_log
from lakehouse.io.catalog import GOLD_FEATURES, MODEL_AUDIT
from lakehouse.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Event:
    """One alias change, as the audit table holds it."""

    model_name: str
    alias: str
    action: str
    from_version: str | None
    to_version: str
    reason: str
    forced: bool = False
    gate_passed: bool | None = None
    gate_metrics: dict[str, Any] | None = None
    run_id: str | None = None


def actor() -> str:
    """Who acts: LAKEHOUSE_ACTOR (set by Airflow tasks, CI) or the OS user."""
    return load_settings().actor or getpass.getuser()


def client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points to, or None when unset (or the model does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion(name: str) -> Any:
    """The model version @champion points to now (resolved once; scoring then uses that version)."""
    from mlflow.exceptions import MlflowException

    try:
        return client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise DataError(
            f"model {name!r} has no @champion: run `lakehouse train` (or `lakehouse models promote`) first"
        ) from None


def trained_version(name: str, wanted: str | None) -> Any:
    """The version asked for, else @challenger (the latest trained), else @champion."""
    registry = client()
    if wanted:
        return registry.get_model_version(name, wanted)
    for alias in (CHALLENGER, CHAMPION):
        version = alias_version(name, alias)
        if version is not None:
            return registry.get_model_version(name, version)
    raise DataError(f"model {name!r} has no trained version yet: run `lakehouse train` first")


def features_version(run_id: str) -> int:
    """The gold_features version the run trained on (its lineage tag)."""
    tag = client().get_run(run_id).data.tags.get(f"lineage.{GOLD_FEATURES.name}.version")
    if tag is None:
        raise DataError(f"run {run_id} has no lineage.{GOLD_FEATURES.name}.version tag: train it again")
    return int(tag)


def _append_event(spark: SparkSession, settings: Settings, event: Event, at: datetime) -> None:
    from lakehouse.contracts.shape import rows_to_df
    from lakehouse.io import delta_io

    event_id = uuid.uuid4().hex
    values = {
        **event.__dict__,
        "event_id": event_id,
        "event_at": at,
        "actor": actor(),
        "gate_metrics": json.dumps(event.gate_metrics, sort_keys=True) if event.gate_metrics is not None else None,
    }
    contract = load_contract(MODEL_AUDIT.contract, settings.contracts_dir)
    df = rows_to_df(spark, contract, [values])
    delta_io.append_once(df, MODEL_AUDIT, settings, f"audit-{event_id}")


def move_alias(spark: SparkSession, settings: Settings, event: Event) -> None:
    """Append the event to the audit table, then point the alias at `to_version` and tag the version.

    The audit row is written first, as a write-ahead log: a command killed between the two leaves an
    audit row whose change is not applied yet, never a change without its row. The next alias change of
    the model completes it first (`complete_interrupted`).
    """
    complete_interrupted(spark, settings, event.model_name)
    at = datetime.now(UTC)  # aware: Spark converts it exactly; microseconds order events of one second
    _append_event(spark, settings, event, at)
    _apply(event.model_name, event.alias, event.to_version, at, actor(), event)


def _apply(name: str, alias: str, version: str, at: datetime, by: str, event: Event | dict[str, Any]) -> None:
    """Set the alias and tag the version with who moved it, when, from where and why."""
    fields = event if isinstance(event, dict) else event.__dict__
    mlflow_client = client()
    mlflow_client.set_registered_model_alias(name, alias, version)
    action = fields["action"]
    tags = {
        f"{alias}.{action}_at": at.isoformat(),
        f"{alias}.{action}_by": by,
        f"{alias}.{action}_from": fields["from_version"] or "-",
        f"{alias}.{action}_reason": fields["reason"],
    }
    if fields["forced"]:
        tags[f"{alias}.{action}_forced"] = "true"
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


def complete_interrupted(spark: SparkSession, settings: Settings, name: str) -> list[str]:
    """Apply the last audited change of each alias that the registry does not show yet (a command killed
    between its audit row and the alias). Only when the alias still points where the row says it came
    from: an alias moved since by other means is left alone, with a warning. Returns what was completed."""
    completed = []
    last: dict[str, dict[str, Any]] = {}
    for row in history(spark, settings, name).collect():
        last[row["alias"]] = row.asDict()
    for alias, event in sorted(last.items()):
        now = alias_version(name, alias)
        if now == event["to_version"]:
            continue
        if now != event["from_version"]:
            print(
                f"WARNING: @{alias} of {name} is version {now}, but its last audited change moved it from "
                f"{event['from_version']} to {event['to_version']}: changed outside the platform, left as it is",
                flush=True,
            )
            continue
        _apply(name, alias, event["to_version"], event["event_at"], event["actor"], event)
        completed.append(f"@{alias} -> {event['to_version']}")
        print(f"completed an interrupted change: @{alias} of {name} -> version {event['to_version']}", flush=True)
    return completed


def history(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    """The model's audit events, oldest first (an empty frame before the first event)."""
    # pyspark only here and in the writes: `lakehouse models list|show|history` run without it.
    from pyspark.sql import functions as F

    from lakehouse.contracts.shape import rows_to_df
    from lakehouse.io import delta_io

    if not delta_io.exists(spark, MODEL_AUDIT, settings):
        contract = load_contract(MODEL_AUDIT.contract, settings.contracts_dir)
        return rows_to_df(spark, contract, [])
    return (
        delta_io.read(spark, MODEL_AUDIT, settings).filter(F.col("model_name") == name).orderBy("event_at", "event_id")
    )


def history_records(settings: Settings, name: str) -> list[dict[str, Any]]:
    """`history` as rows, read with delta-rs: for the commands that print it without starting Spark."""
    if not delta_log.exists(MODEL_AUDIT, settings):
        return []
    events = delta_log.read_arrow(MODEL_AUDIT, settings, filters=[("model_name", "=", name)])
    return delta_log.records(events.sort_by([("event_at", "ascending"), ("event_id", "ascending")]))


def champion_chain(events: list[dict[str, Any]]) -> list[str]:
    """Champions in order, as a stack: a promotion pushes, a rollback pops back to the one before."""
    chain: list[str] = []
    for event in events:
        if event["alias"] != CHAMPION:
            continue
        if event["action"] == "rollback":
            if chain:
                chain.pop()
            if not chain or chain[-1] != event["to_version"]:
                chain.append(event["to_version"])
        else:
            chain.append(event["to_version"])
    return chain


def gate_tags(version_tags: dict[str, str]) -> tuple[bool | None, dict[str, Any]]:
    """The gate verdict and figures recorded on a version at training time (None when never gated)."""
    if "gate.passed" not in version_tags:
        return None, {}
    return version_tags["gate.passed"] == "true", json.loads(version_tags.get("gate.metrics", "{}"))
