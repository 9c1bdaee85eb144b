"""The registered model's serving flavour (an MLflow pyfunc beside the Spark model) and its parity check.

Training logs the Spark pipeline as `model` (the registered version's source) and, in the same run, this
pyfunc as `serving`: the pipeline's own fitted stages as data plus the native booster
(`lakehouse.ml.serving_model`). Its model URI is tagged on the run (`serving.model_uri`),
which is how the service finds the champion's. Before the gate decides, `parity` scores a
sample of the holdout through both flavours; `gate.decide_parity` refuses a version whose flavours differ.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from lakehouse.ml import serving_model

SERVING_ARTIFACT = "serving"
URI_TAG = "serving.model_uri"
# Rows of the holdout both flavours score at registration (a bounded collect).
PARITY_ROWS = 2000


class PipelineStages(PythonModel):
    """pyfunc: raw model-input rows (the columns of gold_planned_features) -> predicted units, no Spark."""

    def load_context(self, context: Any) -> None:
        self.stages = serving_model.json_stages(context.artifacts["stages"])
        missing = next(s["missing"] for s in self.stages if s["kind"] == "xgboost")
        self.regressor = serving_model.load_regressor(context.artifacts["booster"], missing)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.Series:
        return serving_model.predict(self.stages, self.regressor, model_input)

    def predict_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The same predictions for rows given as a numpy array per column: the service's what-if scores two
        rows, where building a frame and MLflow's checks of it cost several times the model (bench/RESULTS.md)."""
        return serving_model.predict_columns(self.stages, self.regressor, columns)


def log_serving_flavour(model: Any, pip_requirements: list[str]) -> str:
    """Log the pipeline's serving flavour in the active run; its model URI (also tagged on the run)."""
    stages, booster = serving_model.stages_of(model)
    with tempfile.TemporaryDirectory(prefix="serving-flavour-") as folder:
        artifacts = serving_model.save(stages, booster, Path(folder))
        info = mlflow.pyfunc.log_model(
            name=SERVING_ARTIFACT,
            python_model=PipelineStages(),
            artifacts=artifacts,
            pip_requirements=pip_requirements,
        )
    mlflow.set_tag(URI_TAG, info.model_uri)
    return str(info.model_uri)


def load_serving_flavour(model_uri: str) -> Any:
    """The pyfunc model at `model_uri` (no Spark session)."""
    return mlflow.pyfunc.load_model(model_uri)


def stages_of(pyfunc_model: Any) -> PipelineStages:
    """The `PipelineStages` a loaded flavour wraps: the service calls its `predict_columns` directly, past the
    pyfunc wrapper's checks of a frame."""
    model = pyfunc_model.unwrap_python_model()
    if not isinstance(model, PipelineStages):
        raise TypeError(f"{type(model).__name__} is not the platform's serving flavour")
    return model


def max_relative_difference(expected: pd.Series, actual: pd.Series) -> float:
    """The largest |a - b| / max(|a|, |b|) over the rows (0 where both are 0; inf where only one is NaN)."""
    worst = 0.0
    for a, b in zip(expected.to_numpy(dtype="float64"), actual.to_numpy(dtype="float64"), strict=True):
        if math.isnan(a) or math.isnan(b):
            if not (math.isnan(a) and math.isnan(b)):
                return math.inf
            continue
        scale = max(abs(a), abs(b))
        worst = max(worst, 0.0 if scale == 0 else abs(a - b) / scale)
    return worst


def parity(sample: pd.DataFrame, spark_predictions: pd.Series, serving: Any) -> dict[str, float]:
    """Score the sample's rows with the serving flavour against the Spark flavour's predictions of them."""
    served = pd.Series(serving.predict(sample), index=sample.index)
    return {
        "parity_rows": float(len(sample)),
        "parity_max_rel_diff": max_relative_difference(spark_predictions, served),
    }
