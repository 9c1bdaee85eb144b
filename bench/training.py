"""Training benchmark: distributed xgboost.spark against single-node xgboost on the same rows.

For each size: build synthetic gold features through the medallion (once), then, each in a fresh
process so peak memory is its own:
- distributed: the platform's pipeline (`lakehouse.ml.modeling`) fitted with `xgboost.spark` on Spark;
- floor: the same encoded rows collected to the driver (Arrow), then `xgboost.XGBRegressor` with the
  same parameters and all cores, in one process.
Both are scored on the same holdout (latest 8 weeks), so quality can be compared.
Usage: python -m bench.training [--rows 1000000 5000000] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.harness import publish, python_peak_rss_mb, run_sizes

PRODUCTS, WEEKS, HOLDOUT = 20, 50, 8
START = date(2023, 1, 2)


def prepare(rows: int, home: Path, generator_args: tuple[str, ...] = ()) -> dict:
    """Synthetic deliveries (`sample-data synthetic ... *generator_args`) -> bronze -> silver -> gold features."""
    os.environ["LAKEHOUSE_HOME"] = str(home)
    from jobs.sample_data import main as sample_data
    from lakehouse.io.spark import get_spark
    from lakehouse.medallion.build_flow import build_weeks
    from lakehouse.medallion.ingest_flow import ingest_deliveries
    from lakehouse.progress import Progress
    from lakehouse.settings import load_settings
    from lakehouse.weeks import utc_now

    settings = load_settings()
    spark = get_spark("bench-training-prepare", settings)
    raw = home / "raw"
    args = ["--outlets", str(rows // (PRODUCTS * WEEKS)), "--products", str(PRODUCTS), "--weeks", str(WEEKS)]
    sample_data(
        [
            "synthetic",
            "--out",
            str(raw),
            *args,
            "--start",
            START.isoformat(),
            "--layout",
            "single",
            "--files",
            str(max(2, rows // 500_000)),
            *generator_args,
        ]
    )
    for kind in ("outlets", "products"):
        ingest_deliveries(spark, settings, [str(raw / kind)], kind, utc_now())
    ingest_deliveries(spark, settings, [str(raw / "sales" / "all")], "sales", utc_now())
    build_weeks(spark, settings, START, START + timedelta(weeks=WEEKS - 1), Progress("bench-prepare"))
    shutil.rmtree(raw)
    return {}


def _split(spark, settings):
    from lakehouse.io import delta_io
    from lakehouse.io.catalog import GOLD_FEATURES
    from lakehouse.ml import modeling
    from lakehouse.ml.model_inputs import NUMERIC_FEATURES, filter_weeks
    from lakehouse.ml.training import labelled_rows

    labelled = labelled_rows(delta_io.read(spark, GOLD_FEATURES, settings))
    holdout_from = START + timedelta(weeks=WEEKS - HOLDOUT)
    train = filter_weeks(labelled, None, holdout_from - timedelta(days=7))
    holdout = filter_weeks(labelled, holdout_from, None)
    return train, holdout, modeling.usable_numeric(train, NUMERIC_FEATURES)


def measure(path: str, home: Path) -> dict:
    """Fit one way on the prepared table; time, holdout WAPE and peak driver memory."""
    os.environ["LAKEHOUSE_HOME"] = str(home)
    from lakehouse.io.spark import get_spark
    from lakehouse.ml import modeling
    from lakehouse.ml.evaluation import regression_metrics
    from lakehouse.policy import from_dict
    from lakehouse.settings import load_settings

    settings = load_settings()
    # Arrow for the floor's toPandas (Spark 4.0 leaves it off); the distributed path collects no rows.
    spark = get_spark(f"bench-training-{path}", settings, {"spark.sql.execution.arrow.pyspark.enabled": "true"})
    params = from_dict({}).training.params["xgboost"]
    train, holdout, numeric = _split(spark, settings)
    pipeline = modeling.build_pipeline("xgboost", params, numeric, num_workers=os.cpu_count() or 2)
    if path == "distributed":
        start = time.perf_counter()
        model = modeling.fit(pipeline, train)
        fit_s = time.perf_counter() - start
        wape = regression_metrics(modeling.predict(model, holdout), modeling.PREDICTION)["wape"]
        return {"fit_s": round(fit_s, 1), "wape": round(wape, 4), "python_peak_rss_mb": python_peak_rss_mb()}
    return _single_node(pipeline, train, holdout, params, numeric)


def _single_node(pipeline, train, holdout, params, numeric) -> dict:
    import numpy as np
    from pyspark.ml import Pipeline
    from pyspark.sql import functions as F
    from xgboost import XGBRegressor

    from lakehouse.ml import modeling
    from lakehouse.ml.modeling import with_log_label

    encode = Pipeline(stages=pipeline.getStages()[:3]).fit(train)  # SQL casts, indexer, codes
    columns = modeling.feature_columns(numeric)

    def collect(df):
        out = encode.transform(with_log_label(df)).select(*columns, "log_units", F.col("units").cast("double"))
        pdf: Any = out.toPandas()
        return pdf[columns].to_numpy(np.float32), pdf["log_units"].to_numpy(), pdf["units"].to_numpy()

    start = time.perf_counter()
    x_train, y_train, _ = collect(train)
    collect_s = time.perf_counter() - start
    start = time.perf_counter()
    model = XGBRegressor(**params, n_jobs=os.cpu_count(), missing=np.nan).fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    x_test, _, units = collect(holdout)
    predicted = np.maximum(np.expm1(model.predict(x_test)), 0.0)
    wape = float(np.abs(predicted - units).sum() / units.sum())
    return {
        "fit_s": round(fit_s, 1),
        "collect_s": round(collect_s, 1),
        "wape": round(wape, 4),
        "python_peak_rss_mb": python_peak_rss_mb(),
    }


def report(results: list[dict]) -> str:
    lines = [
        "| gold rows | train rows | xgboost.spark fit s | single-node fit s | collect to driver s | x floor (fit) "
        "| x floor (collect + fit) | WAPE spark | WAPE single | driver RSS MB spark | driver RSS MB single |",
        "|" + "---|" * 11,
    ]
    for r in results:
        d, s = r["distributed"], r["single"]
        lines.append(
            f"| {r['rows']:,} | {r['train_rows']:,} | {d['fit_s']} | {s['fit_s']} | {s['collect_s']} | "
            f"{d['fit_s'] / s['fit_s']:.2f} | {d['fit_s'] / (s['fit_s'] + s['collect_s']):.2f} | {d['wape']} | "
            f"{s['wape']} | {d['python_peak_rss_mb']} | {s['python_peak_rss_mb']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--results", type=Path, help="write the table into this file's training section")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, home = args.child
        result = prepare(args.rows[0], Path(home)) if what == "prepare" else measure(what, Path(home))
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    def known(rows: int) -> dict:
        return {"train_rows": rows * (WEEKS - HOLDOUT) // WEEKS}

    results = run_sizes("bench.training", "--rows", args.rows, ("distributed", "single"), known)
    publish("training", report(results), args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
