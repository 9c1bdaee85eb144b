"""The policy: training, gate, registry, effects, scoring, experiment, monitoring, retraining and serving settings.

Embedded defaults (policy.yaml) plus the overrides of a YAML file named by LAKEHOUSE_CONFIG. Plain data, no
pyspark, so a DAG file can load it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from lakehouse.errors import UsageError
from lakehouse.settings import load_settings

DEFAULTS = Path(__file__).with_name("policy.yaml")
AS_PLANNED = "as_planned"
ESTIMATORS = ("xgboost", "mllib_gbt")


@dataclass(frozen=True)
class Action:
    """What scoring may do to a row's plan: a relative price change and promotions switched on (or off)."""

    name: str
    price_change: float = 0.0
    deal: bool | None = None
    feature: bool | None = None
    display: bool | None = None


# Sections that determine a trained model (logged with each run, and part of its training key); changing
# scoring or the experiment must not retrain.
MODEL_SECTIONS = ("training", "registry", "gate")


@dataclass(frozen=True)
class TrainingConfig:
    estimator: str
    params: dict[str, dict[str, Any]]
    num_workers: int
    concurrent_fits: int
    holdout_weeks: int
    cv_folds: int
    min_train_weeks: int
    reproduce_tolerance: float
    monotone: dict[str, int]

    @property
    def estimator_params(self) -> dict[str, Any]:
        return dict(self.params.get(self.estimator, {}))


@dataclass(frozen=True)
class RegistryConfig:
    model_name: str
    experiment: str


@dataclass(frozen=True)
class GateConfig:
    min_improvement: float
    max_abs_bias: float
    segment_column: str
    segment_tolerance: float
    must_beat_baselines: bool
    effects_required: bool
    promotion_tolerance: float
    max_elasticity_change: float
    max_calibration_error: float | None


# How the effects' nuisance models are fitted (`effects.nuisance_fit`): native xgboost in one Spark task per
# fold, or xgboost.spark for folds too big for one task (lakehouse/ml/effects.py).
IN_TASKS, XGBOOST_SPARK = "tasks", "xgboost_spark"


@dataclass(frozen=True)
class EffectsConfig:
    segments: list[str]
    folds: int
    cross_prices: bool
    nuisance_params: dict[str, Any]
    nuisance_fit: str
    nuisance_workers: int
    concurrent_fits: int
    min_group_rows: int
    min_treated_rows: int
    min_treated_share: float
    min_price_sd: float
    confidence: float


@dataclass(frozen=True)
class BacktestConfig:
    weeks: int
    origins: int
    baseline_weeks: int
    min_controls: int
    concurrent_origins: int


@dataclass(frozen=True)
class ScoringConfig:
    active_weeks: int
    actions: list[dict[str, Any]]
    max_discount: float
    max_promoted_per_outlet: int
    min_lift_pct: float
    rank_by: str
    assumed_margin: float
    min_promotion_weeks: int

    def candidate_actions(self) -> list[Action]:
        """The configured actions; a clear error for unknown keys, duplicates or a missing as_planned."""
        allowed = {f.name for f in fields(Action)}
        actions = []
        for raw in self.actions:
            unknown = set(raw) - allowed
            if unknown or "name" not in raw:
                raise UsageError(f"scoring.actions entry {raw!r}: needs a name; unknown keys {sorted(unknown)}")
            actions.append(Action(**raw))
        names = [a.name for a in actions]
        if len(set(names)) != len(names):
            raise UsageError(f"scoring.actions has duplicate names: {names}")
        if AS_PLANNED not in names or actions[names.index(AS_PLANNED)] != Action(AS_PLANNED):
            raise UsageError(f"scoring.actions must include {{name: {AS_PLANNED}}} with no changes")
        return actions


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    holdout_share: float
    pre_weeks: int
    confidence: float
    power: float


@dataclass(frozen=True)
class MonitoringConfig:
    experiment: str
    reference_weeks: int
    sample_rows: int
    strata: list[str]
    numeric_method: str
    categorical_method: str
    drift_threshold: float
    exclude_columns: list[str]
    max_lag_weeks: int
    volume_trailing_weeks: int
    volume_warn: float
    volume_fail: float
    null_rate_warn: float
    null_rate_fail: float


@dataclass(frozen=True)
class RetrainingConfig:
    drift_share: float
    max_wape_increase: float
    max_abs_bias: float
    cooldown_weeks: int


@dataclass(frozen=True)
class ServingConfig:
    refresh_seconds: float
    rate_per_second: float
    burst: int
    page_size: int
    max_page_size: int


@dataclass(frozen=True)
class MLConfig:
    training: TrainingConfig
    registry: RegistryConfig
    gate: GateConfig
    effects: EffectsConfig
    backtest: BacktestConfig
    scoring: ScoringConfig
    experiment: ExperimentConfig
    monitoring: MonitoringConfig
    retraining: RetrainingConfig
    serving: ServingConfig

    def as_dict(self, sections: tuple[str, ...] = MODEL_SECTIONS) -> dict[str, dict[str, Any]]:
        """The named sections as plain dicts (by default those that determine a trained model)."""
        return {
            name: {f.name: getattr(getattr(self, name), f.name) for f in fields(getattr(self, name))}
            for name in sections
        }


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _section(cls: type, raw: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(raw.get(name, {})) - known
    if unknown:
        raise UsageError(f"config section {name!r} has unknown keys: {', '.join(sorted(unknown))}")
    return cls(**raw[name])


def from_dict(raw: dict[str, Any]) -> MLConfig:
    """Build the config from a dict shaped like policy.yaml (merged over the defaults)."""
    merged = _merge(yaml.safe_load(DEFAULTS.read_text()), raw)
    config = MLConfig(
        training=_section(TrainingConfig, merged, "training"),
        registry=_section(RegistryConfig, merged, "registry"),
        gate=_section(GateConfig, merged, "gate"),
        effects=_section(EffectsConfig, merged, "effects"),
        backtest=_section(BacktestConfig, merged, "backtest"),
        scoring=_section(ScoringConfig, merged, "scoring"),
        experiment=_section(ExperimentConfig, merged, "experiment"),
        monitoring=_section(MonitoringConfig, merged, "monitoring"),
        retraining=_section(RetrainingConfig, merged, "retraining"),
        serving=_section(ServingConfig, merged, "serving"),
    )
    config.scoring.candidate_actions()
    if not 0.0 <= config.experiment.holdout_share < 1.0:
        raise UsageError(f"experiment.holdout_share must be in [0, 1): {config.experiment.holdout_share}")
    if config.monitoring.sample_rows < 100 or config.retraining.cooldown_weeks < 0:
        raise UsageError("monitoring.sample_rows must be at least 100 and retraining.cooldown_weeks not negative")
    if config.effects.folds < 2 or not 0.0 < config.effects.confidence < 1.0:
        raise UsageError("effects.folds must be at least 2 and effects.confidence in (0, 1)")
    if config.scoring.rank_by not in ("units", "margin") or not 0.0 <= config.scoring.assumed_margin < 1.0:
        raise UsageError("scoring.rank_by must be units or margin, and scoring.assumed_margin in [0, 1)")
    if config.effects.nuisance_workers < 1 or config.effects.concurrent_fits < 1:
        raise UsageError("effects.nuisance_workers and effects.concurrent_fits must be at least 1")
    if config.effects.nuisance_fit not in (IN_TASKS, XGBOOST_SPARK):
        raise UsageError(f"effects.nuisance_fit must be {IN_TASKS} or {XGBOOST_SPARK}: {config.effects.nuisance_fit!r}")
    if config.training.concurrent_fits < 1:
        raise UsageError("training.concurrent_fits must be at least 1")
    if config.backtest.concurrent_origins < 1:
        raise UsageError("backtest.concurrent_origins must be at least 1")
    if any(v not in (-1, 0, 1) for v in config.training.monotone.values()):
        raise UsageError(f"training.monotone values must be -1, 0 or 1: {config.training.monotone}")
    serving = config.serving
    if serving.refresh_seconds <= 0 or serving.rate_per_second <= 0 or serving.burst < 1:
        raise UsageError("serving.refresh_seconds and serving.rate_per_second must be positive, serving.burst >= 1")
    if not 1 <= serving.page_size <= serving.max_page_size:
        raise UsageError("serving.page_size must be between 1 and serving.max_page_size")
    if config.training.estimator not in ESTIMATORS:
        raise UsageError(f"training.estimator {config.training.estimator!r} is not one of {', '.join(ESTIMATORS)}")
    return config


def load_ml_config(env: dict[str, str] | None = None) -> MLConfig:
    """Defaults, overridden by the YAML file LAKEHOUSE_CONFIG names (if set)."""
    override: dict[str, Any] = {}
    path = load_settings(env).config_file
    if path is not None:
        if not path.exists():
            raise UsageError(f"LAKEHOUSE_CONFIG {path} does not exist")
        override = yaml.safe_load(path.read_text()) or {}
    return from_dict(override)
