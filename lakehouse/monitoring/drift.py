"""Drift of the champion's inputs, predictions and actuals, and its quality on the samples (Evidently 0.7).

Evidently is imported inside the functions: `import evidently` costs seconds and most commands never run it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from lakehouse.ml.model_inputs import LABEL
from lakehouse.ml.modeling import PREDICTION
from lakehouse.monitoring.checks import DATA_DRIFT, FAIL, OK, PREDICTION_DRIFT, QUALITY, WARN, Check, rounded
from lakehouse.policy import MonitoringConfig, RetrainingConfig


def _evidently_data(reference: Any, current: Any, numeric: list[str], categorical: list[str]) -> tuple[Any, Any]:
    from evidently import DataDefinition, Dataset, Regression

    definition = DataDefinition(
        numerical_columns=[*numeric, PREDICTION, LABEL],
        categorical_columns=categorical,
        regression=[Regression(target=LABEL, prediction=PREDICTION)],
    )
    return (
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def _run(metrics: list[Any], current: Any, reference: Any) -> Any:
    from evidently import Report

    with warnings.catch_warnings():  # correlations of constant columns divide by zero; harmless
        warnings.simplefilter("ignore")
        return Report(metrics, include_tests=True).run(current, reference)


def _value_drifts(snapshot: Any) -> dict[str, tuple[float | None, float]]:
    """column -> (distance, threshold) of every ValueDrift in a report."""
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            out[config["column"]] = (rounded(metric["value"]), float(config["threshold"]))
    return out


@dataclass
class Reports:
    """Evidently snapshots by report name, and the figures they add to the week."""

    snapshots: dict[str, Any]
    checks: list[Check]


def evidently_reports(
    reference: Any,
    current: Any,
    numeric: list[str],
    categorical: list[str],
    cfg: MonitoringConfig,
    policy: RetrainingConfig,
) -> Reports:
    """Data drift of the features, drift of predictions and actuals, and regression quality, on samples.

    A column with no value on one side is drifted without a distance (Evidently cannot compare it);
    with no value on either side it is left out.
    """
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, RegressionPreset

    def filled(c: str) -> tuple[bool, bool]:
        return bool(reference[c].notna().any()), bool(current[c].notna().any())

    comparable = [c for c in numeric + categorical if all(filled(c))]
    one_sided = [c for c in numeric + categorical if any(filled(c)) and not all(filled(c))]
    methods = {c: cfg.numeric_method if c in numeric else cfg.categorical_method for c in comparable}
    cur, ref = _evidently_data(
        reference, current, [c for c in numeric if c in comparable], [c for c in categorical if c in comparable]
    )
    drift = _run(
        [
            DataDriftPreset(
                columns=comparable,
                per_column_method=methods,
                per_column_threshold={c: cfg.drift_threshold for c in comparable},
                drift_share=policy.drift_share,
            )
        ],
        cur,
        ref,
    )
    checks = []
    distances = _value_drifts(drift)
    drifted = 0
    for column in comparable:
        value, threshold = distances[column]
        is_drifted = value is not None and value >= threshold
        drifted += is_drifted
        checks.append(Check(DATA_DRIFT, methods[column], column, value, threshold, WARN if is_drifted else OK))
    checks += [Check(DATA_DRIFT, "no_values", c, None, None, WARN) for c in one_sided]
    drifted += len(one_sided)
    monitored = len(comparable) + len(one_sided)
    share = rounded(drifted / monitored) if monitored else 0.0
    checks += [
        Check(DATA_DRIFT, "drifted_columns", None, float(drifted)),
        Check(
            DATA_DRIFT,
            "drift_share",
            None,
            share,
            policy.drift_share,
            FAIL if (share or 0) > policy.drift_share else OK,
        ),
    ]
    outputs = _run(
        [ValueDrift(column=c, method=cfg.numeric_method, threshold=cfg.drift_threshold) for c in (PREDICTION, LABEL)],
        cur,
        ref,
    )
    for column, (value, threshold) in _value_drifts(outputs).items():
        status = WARN if value is not None and value >= threshold else OK
        checks.append(Check(PREDICTION_DRIFT, cfg.numeric_method, column, value, threshold, status))
    quality = _run([RegressionPreset()], cur, ref)
    for metric in quality.dict()["metrics"]:
        name = metric["metric_name"].split("(")[0]
        value = metric["value"]
        if isinstance(value, dict):  # {mean, std}: keep the mean
            value = value.get("mean")
        if isinstance(value, int | float):
            checks.append(Check(QUALITY, f"sample_{name.lower()}", None, rounded(value)))
    return Reports({DATA_DRIFT: drift, PREDICTION_DRIFT: outputs, QUALITY: quality}, checks)
