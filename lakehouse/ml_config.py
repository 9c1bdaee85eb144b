"""Training, gate and registry settings: embedded defaults (defaults.yaml) plus an optional override file."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from lakehouse.runtime import UsageError

DEFAULTS = Path(__file__).with_name("defaults.yaml")
ESTIMATORS = ("xgboost", "mllib_gbt")


@dataclass(frozen=True)
class TrainingConfig:
    estimator: str
    params: dict[str, dict[str, Any]]
    num_workers: int
    holdout_weeks: int
    cv_folds: int
    min_train_weeks: int
    reproduce_tolerance: float

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


@dataclass(frozen=True)
class MLConfig:
    training: TrainingConfig
    registry: RegistryConfig
    gate: GateConfig

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            s.name: {f.name: getattr(getattr(self, s.name), f.name) for f in fields(getattr(self, s.name))}
            for s in fields(self)
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
    """Build the config from a dict shaped like defaults.yaml (merged over the defaults)."""
    merged = _merge(yaml.safe_load(DEFAULTS.read_text()), raw)
    config = MLConfig(
        training=_section(TrainingConfig, merged, "training"),
        registry=_section(RegistryConfig, merged, "registry"),
        gate=_section(GateConfig, merged, "gate"),
    )
    if config.training.estimator not in ESTIMATORS:
        raise UsageError(f"training.estimator {config.training.estimator!r} is not one of {', '.join(ESTIMATORS)}")
    return config


def load_ml_config(env: dict[str, str] | None = None) -> MLConfig:
    """Defaults, overridden by the YAML file LAKEHOUSE_CONFIG names (if set)."""
    env = dict(os.environ) if env is None else env
    override: dict[str, Any] = {}
    if env.get("LAKEHOUSE_CONFIG"):
        path = Path(env["LAKEHOUSE_CONFIG"])
        if not path.exists():
            raise UsageError(f"LAKEHOUSE_CONFIG {path} does not exist")
        override = yaml.safe_load(path.read_text()) or {}
    return from_dict(override)
