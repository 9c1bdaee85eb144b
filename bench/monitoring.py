"""Monitoring benchmark: `lakehouse monitor` on a 1M- and a 10M-row feature table, against a one-pass floor.

For each size, each step in a fresh process so peak memory is its own:
- prepare: synthetic deliveries through bronze, silver and gold (as bench.training), then a champion
  trained and promoted by the normal `train` (fewer trees, one CV fold: the model is not what is measured);
- monitor: `lakehouse.monitoring.monitor_flow.monitor_week` on the last week: data health, full-table
  profiles, predictions, the stratified samples, three Evidently reports, MLflow run and Delta writes;
- floor: one plain Spark aggregation (count and mean of every monitored column) over the same rows the
  job compares, the week and the champion's reference weeks.
Goal (issue 5): 10x the rows in under 2x the time, and flat driver memory.
Usage: python -m bench.monitoring [--rows 1000000 10000000] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from pathlib import Path

from bench.harness import publish, python_peak_rss_mb, run_sizes
from bench.training import START, WEEKS
from bench.training import prepare as build_gold

CONFIG = {"training": {"cv_folds": 1, "params": {"xgboost": {"n_estimators": 30}}}}
LAST_WEEK = START + timedelta(weeks=WEEKS - 1)


def _session(home: Path, name: str):
    os.environ["LAKEHOUSE_HOME"] = str(home)
    config_file = home / "bench-config.json"
    config_file.write_text(json.dumps(CONFIG))  # JSON is YAML
    os.environ["LAKEHOUSE_CONFIG"] = str(config_file)
    from lakehouse.io import tracking
    from lakehouse.io.spark import get_spark
    from lakehouse.policy import load_ml_config
    from lakehouse.settings import load_settings

    settings, config = load_settings(), load_ml_config()
    spark = get_spark(name, settings)
    tracking.configure(settings, config.registry.experiment)
    return spark, settings, config


def prepare(rows: int, home: Path) -> dict:
    build_gold(rows, home)
    from lakehouse.ml.train_flow import train

    spark, settings, config = _session(home, "bench-monitoring-prepare")
    train(spark, settings, config, None, promote=True)
    return {}


def monitor(home: Path) -> dict:
    from lakehouse.monitoring.monitor_flow import monitor_week
    from lakehouse.progress import Progress

    spark, settings, config = _session(home, "bench-monitoring-monitor")
    start = time.perf_counter()
    decision, _ = monitor_week(spark, settings, config, LAST_WEEK, Progress("bench-monitor"))
    return {
        "monitor_s": round(time.perf_counter() - start, 1),
        "decision": decision.summary(),
        "python_peak_rss_mb": python_peak_rss_mb(),
    }


def floor(home: Path) -> dict:
    """One aggregation over the week and the reference weeks: the least any full-table monitor must do."""
    from pyspark.sql import functions as F

    from lakehouse.io import delta_io
    from lakehouse.io.catalog import GOLD_FEATURES
    from lakehouse.monitoring.monitor_flow import champion_reference

    spark, settings, config = _session(home, "bench-monitoring-floor")
    ref = champion_reference(config.registry.model_name, config.monitoring.reference_weeks)
    start = time.perf_counter()
    df = delta_io.read(spark, GOLD_FEATURES, settings).filter(
        F.col("week_start").between(ref.first, ref.last) | (F.col("week_start") == F.lit(LAST_WEEK))
    )
    row = df.agg(F.count(F.lit(1)).alias("n"), *[F.avg(c) for c in ref.numeric]).first()
    assert row is not None
    return {
        "floor_s": round(time.perf_counter() - start, 1),
        "rows": row["n"],
        "python_peak_rss_mb": python_peak_rss_mb(),
    }


def report(results: list[dict]) -> str:
    lines = [
        "| table rows | rows compared | floor s | monitor s | x floor | driver RSS MB monitor | driver RSS MB floor "
        "| decision |",
        "|" + "---|" * 8,
    ]
    for r in results:
        m, f = r["monitor"], r["floor"]
        lines.append(
            f"| {r['rows']:,} | {f['rows']:,} | {f['floor_s']} | {m['monitor_s']} "
            f"| {m['monitor_s'] / f['floor_s']:.1f} "
            f"| {m['python_peak_rss_mb']} | {f['python_peak_rss_mb']} | {m['decision']} |"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        lines.append(
            f"\nScaling: {large['rows'] / small['rows']:.0f}x the rows took "
            f"{large['monitor']['monitor_s'] / small['monitor']['monitor_s']:.2f}x the time (goal < 2x); "
            f"driver peak RSS {small['monitor']['python_peak_rss_mb']} -> {large['monitor']['python_peak_rss_mb']} MB."
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--results", type=Path, help="write the table into this file's monitoring section")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, home = args.child
        steps = {"prepare": lambda h: prepare(args.rows[0], h), "monitor": monitor, "floor": floor}
        print("RESULT " + json.dumps(steps[what](Path(home))), flush=True)
        return 0
    results = run_sizes("bench.monitoring", "--rows", args.rows, ("monitor", "floor"))
    publish("monitoring", report(results), args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
