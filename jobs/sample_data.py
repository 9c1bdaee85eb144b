"""Write sample raw deliveries: Dominick's orange juice (from Debian) or synthetic data with known effects."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from lakehouse.cli.args import iso_date, run_main
from lakehouse.errors import UsageError
from lakehouse.progress import Progress
from lakehouse.settings import REPO_ROOT, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    dom = sub.add_parser("dominicks", help="Dominick's refrigerated orange juice, 83 stores x 121 weeks")
    dom.add_argument("--out", type=Path, help="output folder (default: $LAKEHOUSE_HOME/deliveries/dominicks)")
    syn = sub.add_parser("synthetic", help="synthetic outlets x products x weeks with known true effects")
    syn.add_argument("--out", type=Path, required=True, help="output folder (local path)")
    syn.add_argument("--outlets", type=int, default=50)
    syn.add_argument("--products", type=int, default=8)
    syn.add_argument("--weeks", type=int, default=30)
    syn.add_argument("--start", type=iso_date, default=date(2024, 1, 1), help="first week (a Monday)")
    syn.add_argument("--seed", type=int, default=7)
    syn.add_argument(
        "--confounded",
        action="store_true",
        help="targeted promotions, substitution within a category and a post-promotion dip (as real data has)",
    )
    syn.add_argument("--format", choices=("csv", "parquet", "json"), default="csv")
    syn.add_argument(
        "--layout",
        choices=("weekly", "single"),
        default="weekly",
        help="one delivery folder per week, or one delivery holding every week",
    )
    syn.add_argument("--files", type=int, default=1, help="files per delivery (single layout: total files)")
    syn.add_argument("--drift-from-week", type=int, help="from this week index on, change the regime (see below)")
    syn.add_argument("--price-factor", type=float, default=1.3, help="with --drift-from-week: prices scale by this")
    syn.add_argument("--new-outlets", type=int, default=0, help="with --drift-from-week: a new outlet cluster opens")


def _dominicks(args: argparse.Namespace, progress: Progress) -> int:
    from lakehouse.sources import dominicks

    settings = load_settings()
    out = args.out or settings.data_dir / "dominicks"
    rda = dominicks.fetch_rda(REPO_ROOT / ".cache" / "debs")
    stats = dominicks.write_deliveries(rda, out)
    progress(f"wrote Dominick's deliveries to {out}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return 0


def _synthetic(args: argparse.Namespace, progress: Progress) -> int:
    from lakehouse.io.spark import get_spark
    from lakehouse.sources import synthetic

    if min(args.outlets, args.products, args.weeks, args.files) < 1:
        raise UsageError("--outlets, --products, --weeks and --files must be positive")
    if args.start.weekday() != 0:
        raise UsageError(f"--start {args.start} is not a Monday")
    shape = synthetic.Shape(args.outlets, args.products, args.weeks, args.start, args.seed)
    truth = synthetic.Truth.confounded() if args.confounded else synthetic.Truth()
    drift = None
    if args.drift_from_week is not None:
        if not 0 < args.drift_from_week < args.weeks or args.new_outlets < 0 or args.price_factor <= 0:
            raise UsageError("--drift-from-week must be within --weeks, --new-outlets >= 0, --price-factor > 0")
        drift = synthetic.Drift(args.drift_from_week, args.price_factor, args.new_outlets)
    spark = get_spark("lakehouse-sample-data")
    out = str(args.out.resolve())

    def write(df, path: str, partition_by: tuple[str, ...] = ()) -> None:
        writer = df.write.mode("overwrite").partitionBy(*partition_by)
        if args.format == "csv":
            writer.option("header", True).csv(path)
        else:
            getattr(writer, args.format)(path)

    hidden = ("outlet_idx", "product_idx", "_outlet_effect", "_base_log_units", "_base_price")
    write(synthetic.outlets_df(spark, shape, truth, drift).drop(*hidden).coalesce(1), f"{out}/outlets")
    write(synthetic.products_df(spark, shape).drop(*hidden).coalesce(1), f"{out}/products")
    sales = synthetic.sales_df(spark, shape, truth, drift)
    if args.layout == "weekly":
        write(
            sales.withColumnRenamed("delivery_week", "week").repartition(args.files, "week"),
            f"{out}/sales",
            ("week",),
        )
    else:
        write(sales.drop("delivery_week").repartition(args.files), f"{out}/sales/all")
    synthetic.write_truth(args.out, shape, truth)
    rows = sales.count() if drift else shape.outlets * shape.products * shape.weeks
    progress(f"wrote {rows} synthetic sales rows ({args.layout}, {args.format}) and truth.json to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    progress = Progress("sample-data")
    return _dominicks(args, progress) if args.source == "dominicks" else _synthetic(args, progress)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("sample-data", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
