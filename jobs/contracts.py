"""Check the data contracts: a breaking change is refused unless the contract's major version changes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lakehouse.cli.args import run_main
from lakehouse.contracts.versions import compare, contracts_at, problems
from lakehouse.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="compare every contract with its previous version", description=__doc__)
    check.add_argument(
        "--against",
        default="HEAD",
        metavar="REV_OR_DIR",
        help="the previous versions: a git revision of the contracts folder (default HEAD) or a directory",
    )


def run(args: argparse.Namespace) -> int:
    contracts_dir = load_settings().contracts_dir
    before = contracts_at(args.against, contracts_dir)
    after = contracts_at(str(contracts_dir), contracts_dir)
    refused: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            state = "new" if old is None else "deleted"
            print(f"{name}: {state}" + (f" {new.version}" if new else ""))
        elif changes := compare(old, new):
            print(f"{name}: {old.version} -> {new.version}: " + "; ".join(c.what for c in changes))
        refused += problems(old, new)
    for line in refused:
        print(f"refused: {line}", file=sys.stderr)
    print(f"contracts: {len(after)} checked against {args.against}, {len(refused)} refused")
    return 1 if refused else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("contracts", add_arguments, run, argv, __doc__ or "")


if __name__ == "__main__":
    raise SystemExit(main())
