"""`lakehouse` command line: one subcommand per job; every job is also `python -m jobs.<name>`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from lakehouse.runtime import Parser, guarded

# subcommand -> job module; each module has add_arguments(parser), run(args) and a docstring.
COMMANDS = {
    "ingest": "jobs.ingest",
    "build": "jobs.build",
    "backfill": "jobs.backfill",
    "tables": "jobs.tables",
    "quarantine": "jobs.quarantine",
    "sample-data": "jobs.sample_data",
    "train": "jobs.train",
    "models": "jobs.models",
    "score": "jobs.score",
    "recommendations": "jobs.recommendations",
    "lift": "jobs.measure_lift",
    "monitor": "jobs.monitor",
    "contracts": "jobs.contracts",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        module.add_arguments(sub.add_parser(name, help=summary, description=module.__doc__))
        modules[name] = module
    args = parser.parse_args(argv)
    return guarded(f"lakehouse {args.command}", lambda: modules[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
