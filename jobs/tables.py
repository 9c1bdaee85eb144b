"""List every table: layer, path, Delta version, rows, columns and last write."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.io import delta_log
from lakehouse.io.catalog import TABLES
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    infos = [delta_log.describe(t, settings) for t in TABLES]  # from the Delta logs, without a JVM
    if args.json:
        print(json.dumps(infos, indent=2, default=str))
        return 0
    print(f"{'table':<22}{'layer':<8}{'version':>8}{'rows':>12}{'cols':>6}  last write")
    for info in infos:
        version = "-" if info["version"] is None else info["version"]
        columns = info["columns"]
        assert isinstance(columns, list)
        print(
            f"{info['table']:<22}{info['layer']:<8}{version:>8}{info['rows']:>12}{len(columns):>6}  "
            f"{info['last_write'] or 'not written yet'}"
        )
    print(f"warehouse: {settings.warehouse}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("tables", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
