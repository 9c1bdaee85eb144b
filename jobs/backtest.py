"""Back-test a model version's effects on the promotions that really happened, and write gold_backtest.

Over the last `backtest.weeks` weeks of the gold_features version the model was trained on, in
`backtest.origins` blocks: effects estimated only from the weeks before each block predict the lift of
every promotion in it, and the prediction is set against the realised lift (lakehouse.ml.backtest).
Prints the calibration per brand and action; logs a table and a plot to the model's MLflow run. A re-run
from the same inputs writes nothing. The effects gate runs the same back-test before promotion.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.io import delta_log, tracking
from lakehouse.io.catalog import GOLD_BACKTEST
from lakehouse.ml import registry
from lakehouse.ml.backtest_summary import summary_line, table
from lakehouse.policy import load_ml_config
from lakehouse.progress import Progress
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", help="the model version (default: the latest trained, @challenger)")
    parser.add_argument("--force", action="store_true", help="compute again even if these inputs were back-tested")
    parser.add_argument("--show", action="store_true", help="print the stored back-test of the version (no Spark)")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    if args.show:
        rows = delta_log.model_version_records(
            GOLD_BACKTEST, settings, config.registry.model_name, args.model_version, "lakehouse backtest"
        )
    else:
        from lakehouse.io.spark import get_spark
        from lakehouse.ml.backtest_flow import backtest_version

        spark = get_spark("lakehouse-backtest", settings)
        tracking.configure(settings, config.registry.experiment)
        version = registry.trained_version(config.registry.model_name, args.model_version)
        rows = backtest_version(spark, settings, config, version, args.force, Progress("backtest"))
    print(table(rows))
    print("back-test: " + summary_line(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("backtest", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
