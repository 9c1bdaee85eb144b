"""What a training run logs to MLflow beside the model: flat params, plots and pinned requirements."""

from __future__ import annotations

from typing import Any


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
