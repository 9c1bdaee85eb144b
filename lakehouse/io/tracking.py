"""MLflow set-up and run lineage: where runs go, and what every run records about its inputs."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from lakehouse.settings import REPO_ROOT, Settings


def tracking_uri(settings: Settings, env: dict[str, str]) -> str:
    """`MLFLOW_TRACKING_URI` when set (a server), else SQLite under LAKEHOUSE_HOME."""
    return env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"


def configure(settings: Settings, experiment: str, env: dict[str, str]) -> str:
    """Point MLflow at the tracking store and the experiment; returns the experiment id.

    With the local SQLite store, artifacts go under LAKEHOUSE_HOME too (MLflow's default would be
    ./mlruns in the working directory). A server decides its own artifact location.
    """
    import mlflow

    uri = tracking_uri(settings, env)
    if uri.startswith("sqlite:"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    elif uri.startswith("sqlite:"):
        location = (settings.mlflow_dir / "artifacts").as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = mlflow.create_experiment(experiment)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit() -> str:
    """The checkout's commit (with `+dirty` when it has uncommitted changes), or 'unknown' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def lineage_tags(
    tables: dict[str, tuple[str, int]], contracts: dict[str, str], spark_master: str | None
) -> dict[str, Any]:
    """Tags that let a run be reproduced: table -> (path, Delta version), contract versions, commit, master."""
    tags: dict[str, Any] = {"git_commit": git_commit(), "spark_master": spark_master}
    for name, (path, table_version) in tables.items():
        tags[f"lineage.{name}.path"] = path
        tags[f"lineage.{name}.version"] = str(table_version)
    for name, contract_version in contracts.items():
        tags[f"contract.{name}.version"] = contract_version
    return tags


def train_key(lineage: dict[str, Any], config: dict[str, Any]) -> str:
    """A digest of what determines a training run: data versions, contracts, code commit and config."""
    import hashlib

    payload = json.dumps({"lineage": lineage, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> MLflow params (`training.params.max_depth` = `6`)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flat_params(value, name + ".")
        else:
            out[name] = str(value)
    return out


def log_plots(importance: dict[str, float], sample: Any) -> None:
    """Feature importance (top 20) and predicted vs actual on a bounded sample of holdout rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    top = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set_xlabel("share of total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(sample["units"], sample["predicted_units"], s=4, alpha=0.4)
    hi = float(max(sample["units"].max(), sample["predicted_units"].max(), 1.0))
    ax.plot([0, hi], [0, hi], color="grey", linewidth=1)
    ax.set_xscale("symlog")
    ax.set_yscale("symlog")
    ax.set_xlabel("actual units")
    ax.set_ylabel("predicted units")
    ax.set_title(f"Holdout: predicted vs actual ({len(sample)} sampled rows)")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/predicted_vs_actual.png")
    plt.close(fig)


def pip_requirements(estimator: str) -> list[str]:
    """Pinned requirements of a logged model, given here so MLflow need not load the model to infer them."""
    from importlib.metadata import version

    packages = ["mlflow", "pyspark", "pandas", "pyarrow", "numpy"] + (
        ["xgboost", "scikit-learn"] if estimator == "xgboost" else []
    )
    return [f"{p}=={version(p)}" for p in packages]
