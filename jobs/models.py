"""Registry: list versions, show one, promote one to @champion, roll back to the previous champion, history.

Promotion and rollback move the `@champion` alias only; each change is recorded (who, when, from,
to, why, gate figures) in the version's tags and the append-only audit table that `history` prints.
A version that failed the gate (or never went through it) is promoted only with --force, recorded as forced."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from lakehouse.cli.args import run_main
from lakehouse.io import tracking
from lakehouse.ml import registry
from lakehouse.ml.models_flow import HISTORY_COLUMNS, list_versions, promote, rollback, show
from lakehouse.policy import load_ml_config
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("list", help="every version with its aliases, gate verdict and holdout WAPE")
    show = sub.add_parser("show", help="one version: run, metrics, lineage, tags")
    show.add_argument("version")
    promote = sub.add_parser("promote", help="point @champion at VERSION")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True)
    promote.add_argument("--force", action="store_true", help="promote even though the gate did not pass it")
    rollback = sub.add_parser("rollback", help="restore the champion before the current one")
    rollback.add_argument("--reason", required=True)
    sub.add_parser("history", help="every alias change, oldest first")
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="print JSON")


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, list):
        for row in result:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    else:
        for key, value in result.items():
            print(f"{key}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")


def run(args: argparse.Namespace) -> int:
    settings, config = load_settings(), load_ml_config()
    tracking.configure(settings, config.registry.experiment)
    name = config.registry.model_name
    if args.action == "list":
        _print(list_versions(name), args.json)
        return 0
    if args.action == "show":
        _print(show(name, args.version), args.json)
        return 0
    if args.action == "history":  # read with delta-rs: listing and reading need no JVM, only the writes do
        _print([{c: r[c] for c in HISTORY_COLUMNS} for r in registry.history_records(settings, name)], args.json)
        return 0
    from lakehouse.io.spark import get_spark

    spark = get_spark("lakehouse-models", settings)
    if args.action == "promote":
        _print(promote(spark, settings, name, args.version, args.reason, args.force), args.json)
    else:
        _print(rollback(spark, settings, name, args.reason), args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("models", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
