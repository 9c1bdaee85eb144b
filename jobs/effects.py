"""Estimate the causal effects of price and promotions for a model version and write them to gold_effects.

The effects come from the same gold_features version the model was trained on (the run's lineage tag):
double ML (xgboost.spark nuisance models, cross-fitted on blocks of weeks) and a fixed-effects
baseline, per brand and outlet segment, with standard errors clustered by outlet (lakehouse.ml.effects).
They are logged to the model's MLflow run too (a table and a coefficient plot). A re-run for the same
model version, data, config and code writes nothing. `--show` prints what is stored, without Spark.

For a version waiting on its gate (trained with --no-promote, as the train DAG does), the effects
complete the verdict: signs and stability against the champion's effects (lakehouse.ml.gate.decide_effects).
With --promote, a version whose whole gate passed becomes @champion."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.io import delta_log, tracking
from lakehouse.io.catalog import GOLD_EFFECTS
from lakehouse.ml import effects_report, registry
from lakehouse.ml.effects_flow import estimate_with_backtest, promote_if_passed
from lakehouse.policy import load_ml_config
from lakehouse.progress import Progress
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", help="the model version (default: the latest trained, @challenger)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    parser.add_argument("--force", action="store_true", help="estimate again even if these inputs were estimated")
    parser.add_argument("--show", action="store_true", help="print the stored effects of the version (no estimation)")
    parser.add_argument("--promote", action="store_true", help="promote the version if its whole gate passed")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    if args.show:
        rows = delta_log.model_version_records(
            GOLD_EFFECTS, settings, config.registry.model_name, args.model_version, "lakehouse effects"
        )
    else:
        from lakehouse.io.spark import get_spark

        spark = get_spark("lakehouse-effects", settings)
        tracking.configure(settings, config.registry.experiment)
        version = registry.trained_version(config.registry.model_name, args.model_version)
        rows = estimate_with_backtest(spark, settings, config, version, args.force, args.promote)
        if args.promote:
            promote_if_passed(spark, settings, config, version, rows, Progress("effects"))
    if args.json:
        for row in sorted(rows, key=lambda r: (r["method"], r["brand"], r["segment"], r["effect"])):
            print(json.dumps(row, default=str))
        return 0
    print(effects_report.table(rows))
    if args.show:
        tracking.configure(settings, config.registry.experiment)
    metrics = registry.client().get_run(rows[0]["run_id"]).data.metrics if rows else {}
    print(effects_report.forecast_line(metrics))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("effects", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
