"""Scoring benchmark: the platform's scoring path against the same model's native predict in one process.

For each size (outlets x 20 products, 8 candidate actions each), each step in a fresh process so peak
memory is its own:
- prepare: a pipeline with the default xgboost parameters is fitted on synthetic feature rows and saved
  in MLflow's Spark flavour; the week's scoring rows (one per outlet x product, with their typical
  promotion cuts as `lakehouse.scoring.prices` would have joined them) are written as Parquet.
- platform: the model loaded with `mlflow.spark.load_model`, the rows cached in Spark, then what
  `lakehouse score` does after building the rows: the as-planned forecast, every candidate action's
  lift from the effects (a generated book: 7 brands x ALL, channel and income segments, with cross
  prices), choose (`scoring.recommend`) and write the recommendations to Delta. Also timed alone: the
  predict into Spark's noop sink (run twice: the first run's extra time is the one-off start-up of
  Python workers, reported apart).
- floor: the same rows, encoded by the pipeline's own stages and collected as one float32 matrix (not
  timed), then the booster's `inplace_predict` with all cores.
Usage: python -m bench.scoring [--outlets 25000 50000 100000] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.harness import publish, python_peak_rss_mb, run_sizes

PRODUCTS = 20
STATES = ("deal", "deal+feature", "display", "feature", "feature+display")  # of the default actions
WEEK = date(2024, 6, 3)
TRAIN_ROWS = 200_000


def feature_rows(spark, n_outlets: int, seed: int, label: bool):
    """Gold-feature-shaped rows (one per outlet x product), deterministic; with a units label if asked."""
    from pyspark.sql import functions as F

    from lakehouse.sources.synthetic import BRANDS, CHANNELS, normal, uniform

    def u(name: str):
        return uniform(seed, name, "id")

    base_price = 1.5 + 2.5 * uniform(seed, "base", "p")
    df = (
        spark.range(n_outlets * PRODUCTS)
        .withColumn("o", (F.col("id") / PRODUCTS).cast("long"))
        .withColumn("p", F.col("id") % PRODUCTS)
        .withColumn("outlet_id", F.format_string("OUT%07d", "o"))
        .withColumn("product_id", F.format_string("SKU%04d", "p"))
        .withColumn("week_start", F.lit(WEEK))
        .withColumn("brand", F.element_at(F.array(*map(F.lit, BRANDS)), (F.col("p") % len(BRANDS) + 1).cast("int")))
        .withColumn("category", F.lit("soft_drinks"))
        .withColumn(
            "channel", F.element_at(F.array(*map(F.lit, CHANNELS)), (F.col("o") % len(CHANNELS) + 1).cast("int"))
        )
        .withColumn("region", F.lit("north"))
        .withColumn("price_mean_4w", F.round(base_price, 2))
        .withColumn("unit_price", F.round(base_price * (0.8 + 0.3 * u("price")), 2))
        .withColumn("log_price", F.log("unit_price"))
        .withColumn("price_index", F.col("unit_price") / F.lit(2.75))
        .withColumn("competitor_price_mean", F.lit(2.75) + 0.2 * normal(seed, "cpm", "id"))
        .withColumn("competitor_price_min", F.col("competitor_price_mean") * 0.7)
        .withColumn("price_vs_competitors", F.col("unit_price") / F.col("competitor_price_mean"))
        .withColumn("competitor_deal_share", F.round(u("cds") * 0.4, 2))
        .withColumn("level", 3.0 + 0.3 * normal(seed, "outlet", "o") + 0.5 * normal(seed, "product", "p"))
        .withColumn("units_mean_4w", F.round(F.exp("level")))
        .withColumn("units_lag_1", F.round(F.exp(F.col("level") + 0.2 * normal(seed, "l1", "id"))))
        .withColumn("units_lag_2", F.round(F.exp(F.col("level") + 0.2 * normal(seed, "l2", "id"))))
        .withColumn("units_lag_52", F.round(F.exp(F.col("level") + 0.3 * normal(seed, "l52", "id"))))
        .withColumn("week_of_year", F.weekofyear("week_start"))
        .withColumn("month", F.month("week_start"))
        .withColumn("season_sin", F.lit(0.5))
        .withColumn("season_cos", F.lit(-0.8))
        .withColumn("income", 10.0 + 0.5 * normal(seed, "income", "o"))
        .withColumn("pack_size", F.lit(12.0))
        .withColumn("is_on_deal", (u("deal") < 0.2) if label else F.lit(False))
        .withColumn("is_featured", (u("feat") < 0.1) if label else F.lit(False))
        .withColumn("has_display", (u("disp") < 0.1) if label else F.lit(False))
        .withColumn("unit_cost", F.round(base_price * 0.55, 2))
        .withColumn("in_holdout", F.col("o") % 10 == 0)
    )
    if not label:  # the typical cut of each promotion state, as the history would give it
        for i in range(len(STATES)):
            df = df.withColumn(f"cut_{i}", F.round(0.05 + 0.25 * uniform(seed, f"cut{i}", "o", "p"), 2))
            df = df.withColumn(f"cut_from_{i}", F.lit("outlet"))
    if label:
        log_units = (
            F.col("level")
            - 2.0 * F.log(F.col("unit_price") / F.col("price_mean_4w"))
            + 0.25 * F.col("is_on_deal").cast("int")
            + 0.35 * F.col("is_featured").cast("int")
            + 0.2 * F.col("has_display").cast("int")
            + 0.2 * normal(seed, "noise", "id")
        )
        df = df.withColumn("units", F.round(F.exp(log_units)))
    return df.drop("id", "o", "p", "level")


def prepare(outlets: int, home: Path) -> dict:
    """Fit and save the model (MLflow Spark flavour); write the scoring rows as Parquet."""
    import mlflow.spark

    from lakehouse.io.spark import get_spark
    from lakehouse.ml import modeling
    from lakehouse.ml.model_inputs import NUMERIC_FEATURES
    from lakehouse.policy import from_dict

    spark = get_spark("bench-scoring-prepare")
    config = from_dict({}).training
    train = feature_rows(spark, TRAIN_ROWS // PRODUCTS, seed=11, label=True).cache()
    numeric = modeling.usable_numeric(train, NUMERIC_FEATURES)
    pipeline = modeling.build_pipeline("xgboost", config.estimator_params, numeric, config.num_workers)
    mlflow.spark.save_model(modeling.fit(pipeline, train), str(home / "model"))
    feature_rows(spark, outlets, seed=7, label=False).write.parquet(str(home / "rows"))
    return {}


def _rows(spark, home: Path):
    """The scoring rows cached in Spark, clustered by outlet as `lakehouse score` builds them."""
    rows = spark.read.parquet(str(home / "rows")).repartition("outlet_id").cache()
    return rows, rows.count()


def effect_book():
    """Generated effects: every brand's own price, promotions, dip and cross prices, overall and per segment."""
    from lakehouse.scoring.lifts import EffectBook
    from lakehouse.sources.synthetic import BRANDS, CHANNELS

    segments = [("ALL", None), *[(f"channel={c}", None) for c in CHANNELS], ("income:low", 10.0), ("income:high", 10.0)]
    effects = {"own_price": -2.0, "deal": 0.25, "feature": 0.35, "display": 0.2, "post_promotion_dip": -0.1}
    rows = []
    for brand in BRANDS:
        for segment, split in segments:
            values = {**effects, **{f"cross_price:{b}": 0.1 for b in BRANDS if b != brand}}
            for effect, value in values.items():
                rows.append(
                    {
                        "method": "dml",
                        "brand": brand,
                        "segment": segment,
                        "effect": effect,
                        "estimate": value,
                        "std_error": 0.05,
                        "ci_low": value - 0.1,
                        "ci_high": value + 0.1,
                        "status": "estimated",
                        "rows": 1000 if segment == "ALL" else 300,
                        "covariances": {"own_price": 0.0005} if effect != "own_price" else {},
                        "segment_split": split,
                    }
                )
    return EffectBook.of("1", rows)


def platform(home: Path) -> dict:
    """The platform's scoring path on cached rows: forecast, lifts from effects, recommend, Delta write."""
    import mlflow.spark
    from pyspark import StorageLevel

    from lakehouse.io.catalog import GOLD_RECOMMENDATIONS
    from lakehouse.io.spark import get_spark
    from lakehouse.ml import modeling
    from lakehouse.policy import from_dict
    from lakehouse.scoring.recommend import Rules, promotion_states, recommend

    spark = get_spark("bench-scoring-platform")
    scoring = from_dict({}).scoring
    actions = scoring.candidate_actions()
    assert tuple(promotion_states(actions)) == STATES, promotion_states(actions)
    model = mlflow.spark.load_model(str(home / "model"))
    rows, n = _rows(spark, home)
    book = effect_book()
    # One-off start-up, reported apart: Python workers, imports, the model shipped to them.
    start = time.perf_counter()
    modeling.predict(model, rows).write.format("noop").mode("overwrite").save()
    startup_s = time.perf_counter() - start

    start = time.perf_counter()
    modeling.predict(model, rows).write.format("noop").mode("overwrite").save()
    predict_s = time.perf_counter() - start

    start = time.perf_counter()
    planned = modeling.predict(model, rows).withColumnRenamed(modeling.PREDICTION, "planned_units")
    # Persisted and counted, as `lakehouse score` does (the cross-price sums and the rows both read it).
    planned = planned.withColumn("planned_unit_price", planned["unit_price"]).persist(StorageLevel.MEMORY_AND_DISK)
    planned.count()
    rules = Rules(
        scoring.max_discount,
        scoring.max_promoted_per_outlet,
        scoring.min_lift_pct,
        scoring.rank_by,
        scoring.assumed_margin,
    )
    recommendations = recommend(planned, book, actions, rules).write.format("delta").mode("overwrite")
    # Statistics on the columns the catalogue names, as `lakehouse score` writes the table.
    stats = ",".join(GOLD_RECOMMENDATIONS.stats_columns)
    recommendations.option("delta.dataSkippingStatsColumns", stats).save(str(home / "recommendations"))
    total_s = time.perf_counter() - start
    # The write floor: the same recommendations, already computed and cached, written to a new Delta table.
    written = spark.read.format("delta").load(str(home / "recommendations")).cache()
    written.count()
    start = time.perf_counter()
    written.write.format("delta").option("delta.dataSkippingStatsColumns", stats).save(str(home / "rewritten"))
    write_s = time.perf_counter() - start
    return {
        "predictions": n,
        "candidates": n * len(actions),
        "startup_s": round(startup_s - predict_s, 1),
        "predict_s": round(predict_s, 1),
        "total_s": round(total_s, 1),
        "write_s": round(write_s, 1),
        "python_peak_rss_mb": python_peak_rss_mb(),
    }


def floor(home: Path) -> dict:
    """The booster's own predict on the same rows (as planned), encoded and collected beforehand."""
    import mlflow.spark
    import numpy as np
    from pyspark.ml import PipelineModel

    from lakehouse.io.spark import get_spark

    spark = get_spark("bench-scoring-floor")
    model = mlflow.spark.load_model(str(home / "model"))
    encode = PipelineModel(stages=model.stages[:3])  # SQL casts, indexer, codes: the estimator's inputs
    booster = model.stages[3].get_booster()
    columns = model.stages[3].getOrDefault("features_cols")  # the pipeline's f_* columns, in order
    rows, _ = _rows(spark, home)
    pdf: Any = encode.transform(rows).select(*columns).toPandas()
    matrix = pdf.to_numpy(np.float32)
    booster.set_param({"nthread": os.cpu_count() or 2})
    start = time.perf_counter()
    predicted = np.maximum(np.expm1(booster.inplace_predict(matrix, missing=np.nan)), 0.0)
    predict_s = time.perf_counter() - start
    return {
        "predictions": int(predicted.shape[0]),
        "predict_s": round(predict_s, 1),
        "python_peak_rss_mb": python_peak_rss_mb(),
    }


def report(results: list[dict]) -> str:
    lines = [
        "| outlets | predictions | floor predict s | platform start-up s | platform predict s | platform total s "
        "| output write s | x floor (predict) "
        "| x floor (total) | x (predict floor + output write) | platform predictions/s | floor predictions/s "
        "| driver RSS MB platform | driver RSS MB floor |",
        "|" + "---|" * 14,
    ]
    for r in results:
        p, f = r["platform"], r["floor"]
        lines.append(
            f"| {r['outlets']:,} | {p['predictions']:,} | {f['predict_s']} | {p['startup_s']} | {p['predict_s']} | "
            f"{p['total_s']} | {p['write_s']} | "
            f"{p['predict_s'] / f['predict_s']:.2f} | {p['total_s'] / f['predict_s']:.2f} | "
            f"{p['total_s'] / (f['predict_s'] + p['write_s']):.2f} | "
            f"{p['predictions'] / p['total_s']:,.0f} | {f['predictions'] / f['predict_s']:,.0f} | "
            f"{p['python_peak_rss_mb']} | {f['python_peak_rss_mb']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outlets", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--results", type=Path, help="write the table into this file's scoring section")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "HOME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, home = args.child
        steps = {"prepare": lambda h: prepare(args.outlets[0], h), "platform": platform, "floor": floor}
        print("RESULT " + json.dumps(steps[what](Path(home))), flush=True)
        return 0
    results = run_sizes("bench.scoring", "--outlets", args.outlets, ("platform", "floor"))
    publish("scoring", report(results), args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
