"""Train the sales-drivers model on gold features, log it to MLflow, register it as @challenger and gate it.

The gate compares the challenger's forecast with @champion on the same, latest holdout (recomputed now),
then (gate.effects_required) estimates the challenger's causal effects and checks their signs and
stability (jobs.effects); it promotes the challenger when both halves pass, unless --no-promote. With
--no-promote the verdict stays pending until `lakehouse effects --promote` (the train DAG's second task).
`--reproduce RUN_ID` retrains a logged run on the same Delta version of the features with its recorded
config and compares the metrics."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.io import tracking
from lakehouse.io.spark import get_spark
from lakehouse.ml.train_flow import reproduce, train
from lakehouse.policy import load_ml_config
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reproduce", metavar="RUN_ID", help="retrain a logged run on its Delta version and compare")
    parser.add_argument("--no-promote", action="store_true", help="gate and record, but leave @champion alone")
    parser.add_argument("--features-version", type=int, help="Delta version of gold_features (default: latest)")
    parser.add_argument("--force", action="store_true", help="train even if this data and config were trained already")
    parser.add_argument("--request-id", default="", help="the retraining request this run answers (tagged on the run)")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    spark = get_spark("lakehouse-train", settings)
    tracking.configure(settings, config.registry.experiment)
    if args.reproduce:
        return reproduce(spark, settings, args.reproduce, None)
    tags = {"retrain.request_id": args.request_id} if args.request_id else None
    return train(
        spark, settings, config, args.features_version, promote=not args.no_promote, force=args.force, tags=tags
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("train", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
