"""Medallion benchmark: synthetic raw rows through bronze, silver and gold, against a plain-copy floor.

For each size, in a fresh process (so peak memory is per size): generate a CSV delivery, time
(floor) Spark reading the raw files and writing them to Parquet with no logic, then ingest (bronze),
build silver, build gold over every week. Then the hand-written peer (`bench.medallion_peer`: the same tables
without the guarantees) and the same logic in DuckDB, in the same process. Reports rows/s per stage, the ratio
of the whole medallion to the floor and to the peer, the 20M/5M time ratio, and peak memory of the Python driver
and of the Spark JVM.
Usage: python -m bench.medallion [--rows 1000000 5000000 20000000] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench import medallion_peer
from bench.harness import jvm_peak_heap_mb, jvm_peak_rss_mb, publish, python_peak_rss_mb, run_child

PRODUCTS, WEEKS = 20, 50
START = date(2023, 1, 2)


def run_one(rows: int, workdir: Path) -> dict:
    """Measure one size in this process; returns the figures as a dict."""
    os.environ["LAKEHOUSE_HOME"] = str(workdir / "home")
    from jobs.sample_data import main as sample_data
    from lakehouse.io.catalog import BRONZE_OUTLETS, BRONZE_PRODUCTS, SILVER_OUTLETS, SILVER_PRODUCTS
    from lakehouse.io.spark import get_spark
    from lakehouse.medallion.build_flow import (
        build_gold,
        build_reference,
        build_silver_sales,
        sales_inputs,
        write_sales_conservation,
    )
    from lakehouse.medallion.ingest_flow import ingest_deliveries
    from lakehouse.settings import load_settings
    from lakehouse.weeks import utc_now

    settings = load_settings()
    spark = get_spark("bench-medallion", settings)
    outlets = rows // (PRODUCTS * WEEKS)
    raw = workdir / "raw"
    files = max(2, rows // 500_000)
    sample_data(
        [
            "synthetic",
            "--out",
            str(raw),
            "--outlets",
            str(outlets),
            "--products",
            str(PRODUCTS),
            "--weeks",
            str(WEEKS),
            "--start",
            START.isoformat(),
            "--layout",
            "single",
            "--files",
            str(files),
        ]
    )
    sales = raw / "sales" / "all"
    timings = {}

    start = time.perf_counter()
    spark.read.option("header", True).csv(str(sales)).write.mode("overwrite").parquet(str(workdir / "floor"))
    timings["floor"] = time.perf_counter() - start

    ingest_deliveries(spark, settings, [str(raw / "outlets")], "outlets", utc_now())
    ingest_deliveries(spark, settings, [str(raw / "products")], "products", utc_now())
    start = time.perf_counter()
    [result] = ingest_deliveries(spark, settings, [str(sales)], "sales", utc_now())
    timings["bronze"] = time.perf_counter() - start
    assert result.rows == outlets * PRODUCTS * WEEKS, result

    last = START + timedelta(weeks=WEEKS - 1)
    start = time.perf_counter()
    build_reference(spark, settings, BRONZE_OUTLETS, SILVER_OUTLETS)
    build_reference(spark, settings, BRONZE_PRODUCTS, SILVER_PRODUCTS)
    conservation = build_silver_sales(spark, settings, START, last, *sales_inputs(spark, settings))
    write_sales_conservation(spark, settings, conservation, START, last)
    timings["silver"] = time.perf_counter() - start
    assert all(r["is_balanced"] for r in conservation)

    start = time.perf_counter()
    build_gold(spark, settings, START, last)
    timings["gold"] = time.perf_counter() - start

    # The platform's driver memory, read before DuckDB runs in this same process (VmHWM only grows).
    python_peak = python_peak_rss_mb()
    # The peer after the platform, in the same (by then warmer) JVM: if anything, that flatters the peer.
    peer = medallion_peer.run(spark, raw, workdir / "peer", utc_now())
    duck = medallion_peer.duckdb_medallion(raw, workdir / "duckdb")
    timings.update({f"peer_{k}": v for k, v in peer.items()}, **{f"duckdb_{k}": v for k, v in duck.items()})

    n = result.rows
    medallion = timings["bronze"] + timings["silver"] + timings["gold"]
    peer_s = peer["silver"] + peer["gold"]
    return {
        "rows": n,
        "files": files,
        **{f"{k}_s": round(v, 1) for k, v in timings.items()},
        **{f"{k}_rows_per_s": round(n / timings[k]) for k in ("floor", "bronze", "silver", "gold")},
        "medallion_s": round(medallion, 1),
        "ratio_to_floor": round(medallion / timings["floor"], 2),
        "peer_s": round(peer_s, 1),
        "ratio_to_peer": round(medallion / peer_s, 2),
        # The peer reads the raw files into silver in one stage: the platform's bronze and silver against it.
        "bronze_silver_to_peer": round((timings["bronze"] + timings["silver"]) / peer["silver"], 2),
        "gold_to_peer": round(timings["gold"] / peer["gold"], 2),
        "duckdb_s": round(duck["silver"] + duck["gold"], 1),
        "python_peak_rss_mb": python_peak,
        "jvm_peak_heap_mb": round(jvm_peak_heap_mb(spark)),
        "jvm_peak_rss_mb": round(jvm_peak_rss_mb(spark)),
    }


def report(results: list[dict]) -> str:
    lines = [
        "| rows | floor s | bronze s | silver s | gold s | medallion s | x floor | floor rows/s | bronze rows/s "
        "| silver rows/s | gold rows/s | Python peak RSS MB | JVM peak heap MB | JVM peak RSS MB |",
        "|" + "---|" * 14,
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['floor_s']} | {r['bronze_s']} | {r['silver_s']} | {r['gold_s']} | "
            f"{r['medallion_s']} | {r['ratio_to_floor']} | {r['floor_rows_per_s']:,} | {r['bronze_rows_per_s']:,} | "
            f"{r['silver_rows_per_s']:,} | {r['gold_rows_per_s']:,} | {r['python_peak_rss_mb']} | "
            f"{r['jvm_peak_heap_mb']} | {r['jvm_peak_rss_mb']} |"
        )
    by_rows = {r["rows"]: r for r in results}
    if 20_000_000 in by_rows and 5_000_000 in by_rows:
        scale = by_rows[20_000_000]["medallion_s"] / by_rows[5_000_000]["medallion_s"]
        lines.append(f"\nCost linearity: medallion time 20M / 5M = {scale:.2f} (goal <= 4.5).")
    lines += [
        "",
        "| rows | medallion s | peer s | x peer (goal <= 1.5) | bronze + silver / peer silver | gold / peer gold "
        "| x floor (goal <= 10) | DuckDB s (context) |",
        "|" + "---|" * 8,
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['medallion_s']} | {r['peer_s']} | {r['ratio_to_peer']} | "
            f"{r['bronze_silver_to_peer']} | {r['gold_to_peer']} | {r['ratio_to_floor']} | {r['duckdb_s']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--results", type=Path, help="write the markdown table into this file's medallion section")
    args = parser.parse_args()
    if args.one:
        workdir = Path(tempfile.mkdtemp(prefix="bench-medallion-"))
        try:
            print("RESULT " + json.dumps(run_one(args.rows[0], workdir)), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    results = []
    for rows in args.rows:
        try:
            results.append(run_child("bench.medallion", "--one", "--rows", str(rows)))
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(json.dumps(results[-1]), flush=True)
    publish("medallion", report(results), args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
