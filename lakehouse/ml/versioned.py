"""Per-model-version gold tables (gold_effects, gold_backtest): rows kept, copied or computed, then written.

Their rows are a function of the inputs id (the gold_features version, config, contracts and code), not
of the model version: a version whose inputs were already computed for itself keeps its rows, a version
from the same inputs copies another's, and only new inputs are computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakehouse.contracts.model import load_contract
from lakehouse.contracts.shape import rows_to_df
from lakehouse.io import delta_io
from lakehouse.io.catalog import GOLD_FEATURES, Table
from lakehouse.io.lineage import code_id, inputs_id
from lakehouse.ml import registry
from lakehouse.progress import Progress
from lakehouse.settings import Settings


def version_ids(
    settings: Settings, table: Table, version: Any, confidence: float, config: dict[str, Any], code: tuple[str, ...]
) -> dict[str, Any]:
    """What every row of the version carries, `inputs` included: the id of the model name, the gold_features
    version the version was trained on, the config sections given, the contracts read and written, the code."""
    features = registry.features_version(version.run_id)
    parts = {
        "model": version.name,
        "features_version": features,
        "config": config,
        "contracts": {
            c: load_contract(c, settings.contracts_dir).version for c in (GOLD_FEATURES.contract, table.contract)
        },
        "code": code_id(code),
    }
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "run_id": version.run_id,
        "features_version": features,
        "confidence": confidence,
        "inputs": inputs_id(parts),
    }


def stored_with_inputs(spark: SparkSession, settings: Settings, table: Table, name: str, inputs: str) -> list[dict]:
    """The table's rows of the model from these inputs, any version (empty when the table does not exist)."""
    if not delta_io.exists(spark, table, settings):
        return []
    same = delta_io.read(spark, table, settings).filter(
        (F.col("model_name") == F.lit(name)) & (F.col("inputs") == F.lit(inputs))
    )
    return [r.asDict() for r in same.collect()]


def rows_of_version(
    spark: SparkSession,
    settings: Settings,
    table: Table,
    ids: dict[str, Any],
    force: bool,
    compute: Callable[[], list[dict[str, Any]]],
    progress: Progress,
) -> tuple[list[dict[str, Any]], bool]:
    """The version's rows and whether they were written. `ids` holds model_name, model_version and inputs
    (and whatever else every row carries); `compute()` returns new rows without them."""
    name, version, inputs = ids["model_name"], ids["model_version"], ids["inputs"]
    kept = [] if force else stored_with_inputs(spark, settings, table, name, inputs)
    mine = [r for r in kept if r["model_version"] == version]
    if mine:
        progress(f"kept: the {table.name} rows of {name} version {version} are from these inputs ({inputs})")
        return mine, False
    if kept:
        source = min((r["model_version"] for r in kept), key=int)
        progress(f"taking the {table.name} rows of version {source}: computed from the same inputs ({inputs})")
        rows = [{**r, **ids} for r in kept if r["model_version"] == source]
    else:
        rows = [{**r, **ids} for r in compute()]
    contract = load_contract(table.contract, settings.contracts_dir)
    df = rows_to_df(spark, contract, rows)
    delta_io.replace_where(df, table, settings, f"model_name = '{name}' AND model_version = '{version}'")
    progress(f"wrote {len(rows)} rows to {table.name}")
    return rows, True
