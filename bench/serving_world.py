"""A served world at scale without Spark, for `bench.serving_load`: contract-shaped gold tables written with
delta-rs, and a real MLflow registry whose @champion has a real serving flavour.

- The champion's flavour: the platform's own pipeline (`modeling.build_pipeline`, default xgboost parameters)
  fitted once with Spark on 20k synthetic rows (`bench.scoring.feature_rows`, the ids this world uses), its
  fitted stages and booster saved (`serving_model.save`) under the bench's work dir and reused by later runs.
  That is the one Spark step; the pyfunc is then logged from those files, as `lakehouse train` logs it.
- The tables: `silver_outlets`, one scored week of `gold_recommendations` and `gold_planned_features` (every
  outlet x 20 products), the champion's `gold_effects` (every brand, overall, with the deal, feature, display
  and own-price effects and covariances) and a week of `gold_lift`, all from numpy in Arrow columns. A
  recommendation's `candidates` is empty: the service does not read it.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.contracts.arrow import contract_schema
from lakehouse.io.catalog import (
    GOLD_EFFECTS,
    GOLD_LIFT,
    GOLD_PLANNED_FEATURES,
    GOLD_RECOMMENDATIONS,
    SILVER_OUTLETS,
    Table,
)
from lakehouse.settings import Settings
from lakehouse.sources.synthetic import BRANDS, CHANNELS

PRODUCTS = 20
MODEL = "transaction_drivers"
FLAVOUR_TRAIN_OUTLETS = 1000  # x 20 products: the rows the cached flavour is fitted on
EFFECTS = {"own_price": -2.0, "deal": 0.25, "feature": 0.35, "display": 0.2}


def outlet_ids(outlets: int) -> list[str]:
    """The ids `bench.scoring.feature_rows` gives outlets (so the flavour's indexer knows the products)."""
    return [f"OUT{o:07d}" for o in range(outlets)]


def product_ids() -> list[str]:
    return [f"SKU{p:04d}" for p in range(PRODUCTS)]


def fit_flavour(folder: Path) -> dict:
    """Fit the platform's pipeline on synthetic rows with Spark and save its serving stages (run once, cached)."""
    from bench.scoring import feature_rows
    from lakehouse.io.spark import get_spark
    from lakehouse.ml import modeling, serving_model
    from lakehouse.ml.model_inputs import NUMERIC_FEATURES
    from lakehouse.policy import from_dict

    spark = get_spark("bench-serving-flavour")
    config = from_dict({}).training
    train = feature_rows(spark, FLAVOUR_TRAIN_OUTLETS, seed=11, label=True).cache()
    numeric = modeling.usable_numeric(train, NUMERIC_FEATURES)
    pipeline = modeling.build_pipeline("xgboost", config.estimator_params, numeric, config.num_workers)
    stages, booster = serving_model.stages_of(modeling.fit(pipeline, train))
    serving_model.save(stages, booster, folder)
    return {"rows": train.count()}


def register_champion(settings: Settings, flavour: Path, versions: int = 2) -> tuple[Any, list[str]]:
    """`versions` model versions, each from a run that logged the serving flavour in `flavour`; their run ids.

    The versions' Spark model is not logged (the service never loads it); the pyfunc is logged and tagged as
    `serving_flavour.log_serving_flavour` does. No alias is set: the caller promotes.
    """
    import mlflow
    from mlflow import MlflowClient

    from lakehouse.ml import serving_flavour, serving_model

    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    experiment = client.create_experiment("bench-serving", artifact_location=(settings.home / "artifacts").as_uri())
    client.create_registered_model(MODEL)
    artifacts = {
        "stages": str(flavour / serving_model.STAGES_FILE),
        "booster": str(flavour / serving_model.BOOSTER_FILE),
    }
    runs = []
    for _ in range(versions):
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.pyfunc.log_model(
                name=serving_flavour.SERVING_ARTIFACT,
                python_model=serving_flavour.PipelineStages(),
                artifacts=artifacts,
                pip_requirements=[],
            )
            mlflow.set_tag(serving_flavour.URI_TAG, info.model_uri)
            mlflow.set_tag("serving.flavour", "pyfunc")
        client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        runs.append(run.info.run_id)
    return client, runs


def append(table: Table, settings: Settings, rows: int, columns: dict[str, Any]) -> None:
    """Append `rows` rows to `table` with its contract's schema: the given columns (arrays, or one value for
    every row), every other column null."""
    schema = contract_schema(table.contract, settings.contracts_dir)
    arrays = []
    for field in schema:
        value = columns.get(field.name)
        if value is None:
            arrays.append(pa.nulls(rows, field.type))
        elif isinstance(value, pa.Array | np.ndarray | list):
            arrays.append(pa.array(value, field.type))
        else:
            arrays.append(pa.repeat(pa.scalar(value, field.type), rows))
    write_deltalake(
        table.path(settings),
        pa.Table.from_arrays(arrays, schema=schema),
        mode="append",
        partition_by=list(table.partition_by),
    )


def _grid(outlets: int) -> tuple[np.ndarray, np.ndarray, pa.Array, pa.Array, pa.Array, pa.Array]:
    """Every outlet x product, outlet-major: outlet and product numbers, their ids, brands and channels."""
    o = np.repeat(np.arange(outlets), PRODUCTS)
    p = np.tile(np.arange(PRODUCTS), outlets)
    outlet = pa.array(outlet_ids(outlets)).take(pa.array(o))
    product = pa.array(product_ids()).take(pa.array(p))
    brand = pa.array(BRANDS).take(pa.array(p % len(BRANDS)))
    channel = pa.array(CHANNELS).take(pa.array(o % len(CHANNELS)))
    return o, p, outlet, product, brand, channel


def texts(actions: list[str], brands: list[str], prices: np.ndarray, net: np.ndarray, pct: np.ndarray) -> dict:
    """A recommendation's reason, explanation and runner-up's reason, with its own figures, as long as scoring's
    (`scoring.recommend`: about 100, 150 and 50 characters)."""
    reasons, explanations, runner_up = [], [], []
    for action, brand, price, n, p in zip(actions, brands, prices.tolist(), net.tolist(), pct.tolist(), strict=True):
        reasons.append(
            f"{action}: the largest net lift of the qualifying actions "
            f"(net {n:+.1f} units, lift {100 * p:+.1f}% [{80 * p:+.1f}%, {120 * p:+.1f}%])"
        )
        explanations.append(
            f"{action} at {price:.2f} ({100 * p:.0f}% below the plan): {action} {100 * p:+.1f}% "
            f"[{80 * p:+.1f}%, {120 * p:+.1f}%] (dml, {brand}, ALL, 5000 rows); own price -2.00 [-2.10, -1.90]"
        )
        runner_up.append(f"net lift {0.8 * n:.1f}, below the chosen action's {n:.1f}")
    return {"reason": reasons, "explanation": explanations, "runner_up": "feature", "runner_up_reason": runner_up}


def write_week(settings: Settings, week: date, outlets: int, model_version: str, run_id: str) -> None:
    """A scored week as `lakehouse score` writes it: every outlet x product's recommendation and planned row."""
    rng = np.random.default_rng(week.toordinal())
    o, p, outlet, product, brand, channel = _grid(outlets)
    rows = len(o)
    base = (1.5 + 2.5 * np.random.default_rng(1).random(PRODUCTS))[p]
    unit_price = np.round(base * (0.8 + 0.3 * rng.random(rows)), 2)
    competitor_mean = 2.75 + 0.2 * rng.standard_normal(rows)
    level = 3.0 + 0.3 * np.random.default_rng(2).standard_normal(outlets)[o] + 0.5 * rng.standard_normal(rows)
    units = np.round(np.exp(level))
    lineage = {
        "week_start": week,
        "model_name": MODEL,
        "model_version": model_version,
        "model_run_id": run_id,
        "features_version": 1,
        "inputs": f"bench {week}",
    }
    iso = week.isocalendar()
    append(
        GOLD_PLANNED_FEATURES,
        settings,
        rows,
        {
            **lineage,
            "outlet_id": outlet,
            "product_id": product,
            "brand": brand,
            "channel": channel,
            "region": "north",
            "is_on_deal": False,
            "is_featured": False,
            "has_display": False,
            "unit_price": unit_price,
            "log_price": np.log(unit_price),
            "price_index": unit_price / 2.75,
            "competitor_price_mean": competitor_mean,
            "competitor_price_min": competitor_mean * 0.7,
            "price_vs_competitors": unit_price / competitor_mean,
            "competitor_deal_share": np.round(0.4 * rng.random(rows), 2),
            "units_lag_1": np.round(units * np.exp(0.2 * rng.standard_normal(rows))),
            "units_lag_2": np.round(units * np.exp(0.2 * rng.standard_normal(rows))),
            "units_lag_52": np.round(units * np.exp(0.3 * rng.standard_normal(rows))),
            "units_mean_4w": units,
            "price_mean_4w": np.round(base, 2),
            "week_of_year": iso.week,
            "month": week.month,
            "season_sin": math.sin(2 * math.pi * iso.week / 52),
            "season_cos": math.cos(2 * math.pi * iso.week / 52),
            "income": (10.0 + 0.5 * np.random.default_rng(3).standard_normal(outlets))[o],
            "pack_size": 12.0,
            "planned_units": units,
        },
    )
    actions = pa.array(["deal", "feature", "display", "price_cut", "deal+display"])
    action = rng.integers(0, len(actions), rows)
    price_change = np.where(action == 3, -0.1, np.where(action == 0, -0.05, 0.0))
    lift = np.round(units * (0.05 + 0.3 * rng.random(rows)), 3)
    net = lift - np.round(0.02 * units, 3)
    append(
        GOLD_RECOMMENDATIONS,
        settings,
        rows,
        {
            **lineage,
            "outlet_id": outlet,
            "product_id": product,
            "brand": brand,
            "experiment": f"bench-{week}",
            "in_holdout": o % 10 == 0,
            "intended_action": actions.take(pa.array(action)),
            "action": actions.take(pa.array(action)),
            "price_change": price_change,
            **texts(actions.take(pa.array(action)).to_pylist(), brand.to_pylist(), unit_price, net, lift / units),
            "planned_unit_price": unit_price,
            "unit_price": unit_price * (1 + price_change),
            "planned_units": units,
            "predicted_units": units + lift,
            "lift_units": lift,
            "lift_pct": 100 * lift / units,
            "lift_pct_low": 100 * (lift - 0.5 * units * 0.1) / units,
            "lift_pct_high": 100 * (lift + 0.5 * units * 0.1) / units,
            "net_lift_units": net,
            "net_lift_units_low": net - 0.05 * units,
            "net_lift_units_high": net + 0.05 * units,
            "cross_units": -0.01 * units,
            "dip_units": -0.01 * units,
            "incremental_margin": net * unit_price * 0.45,
            "unit_cost": unit_price * 0.55,
            "margin_basis": "unit cost",
            "effects_version": model_version,
            "candidates": pa.repeat(
                pa.scalar([], contract_schema(GOLD_RECOMMENDATIONS.contract).field("candidates").type), rows
            ),
        },
    )


def write_world(settings: Settings, week: date, outlets: int, model_version: str, run_ids: list[str]) -> None:
    """Outlets, the effects of every registered version, a measured week of lift, and one scored week."""
    count = len(outlet_ids(outlets))
    append(
        SILVER_OUTLETS,
        settings,
        count,
        {
            "outlet_id": pa.array(outlet_ids(outlets)),
            "channel": pa.array(CHANNELS).take(pa.array(np.arange(outlets) % len(CHANNELS))),
            "region": "north",
            "_batch_id": "bench",
            "_ingested_at": datetime.now(UTC),
        },
    )
    effects = [
        {
            "model_version": str(version),
            "run_id": run_id,
            "brand": brand,
            "effect": effect,
            "estimate": value,
            "std_error": 0.05,
            "ci_low": value - 0.1,
            "ci_high": value + 0.1,
            "lift_pct": None if effect == "own_price" else 100 * math.expm1(value),
            "covariances": [] if effect == "own_price" else [("own_price", 0.0005)],
        }
        for version, run_id in enumerate(run_ids, start=1)
        for brand in BRANDS
        for effect, value in EFFECTS.items()
    ]
    columns = {name: [row[name] for row in effects] for name in effects[0]}
    fixed = {"model_name": MODEL, "method": "dml", "segment": "ALL", "features_version": 1, "confidence": 0.95}
    fixed |= {"rows": 5000, "status": "estimated", "identified_by": "within outlet x product", "inputs": "bench"}
    append(GOLD_EFFECTS, settings, len(effects), {**columns, **fixed})
    before = date.fromordinal(week.toordinal() - 7)
    lift = {"week_start": before, "experiment": "bench", "brand": "ALL", "method": "cuped", "treated_outlets": count}
    lift |= {"holdout_outlets": count // 10, "treated_mean": 50.0, "holdout_mean": 48.0, "theta": 0.5}
    lift |= {"lift_units": 2.0, "ci_low": 0.5, "ci_high": 3.5, "confidence": 0.95, "pre_weeks": 8}
    append(GOLD_LIFT, settings, 1, {**lift, "model_version": model_version})
    write_week(settings, week, outlets, model_version, run_ids[int(model_version) - 1])
