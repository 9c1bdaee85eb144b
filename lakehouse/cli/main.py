"""`lakehouse` command line: one subcommand per job; every job is also `python -m jobs.<name>`."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from lakehouse.cli.args import Parser
from lakehouse.errors import guarded

# subcommand -> job module; each module has add_arguments(parser), run(args) and a docstring.
COMMANDS = {
    "ingest": "jobs.ingest",
    "build": "jobs.build",
    "backfill": "jobs.backfill",
    "tables": "jobs.tables",
    "quarantine": "jobs.quarantine",
    "sample-data": "jobs.sample_data",
    "train": "jobs.train",
    "effects": "jobs.effects",
    "backtest": "jobs.backtest",
    "models": "jobs.models",
    "score": "jobs.score",
    "recommendations": "jobs.recommendations",
    "lift": "jobs.measure_lift",
    "monitor": "jobs.monitor",
    "contracts": "jobs.contracts",
    "serve": "jobs.serve",
    "serve-token": "jobs.serve_token",
}


def summary(module_name: str) -> str:
    """First line of a job module's docstring, read from its source: importing it may load pyspark and mlflow."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no job module {module_name}")
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(), spec.origin)) or ""
    return (doc.strip().splitlines() or [""])[0]


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = Parser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The top-level parser has no options but --help, so the first word that is not one is the command;
    # only its module is imported (the others cost seconds of imports for a listing of their names).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = importlib.import_module(COMMANDS[chosen]) if chosen in COMMANDS else None
    for name, module_name in COMMANDS.items():
        command_parser = sub.add_parser(name, help=summary(module_name))
        if name == chosen and module is not None:
            command_parser.description = module.__doc__
            module.add_arguments(command_parser)
    args = parser.parse_args(argv)
    assert module is not None  # parse_args exits unless the command is one of COMMANDS
    return guarded(f"lakehouse {args.command}", lambda: module.run(args))


def exit_now(code: int) -> NoReturn:
    """Exit with `code`. A command that read Delta with delta-rs and pyarrow (no Spark) exits at once, without
    the interpreter's teardown: Arrow's native thread pools can abort an already finished process there
    (SIGABRT, "terminate called without an active exception"; apache/arrow#34314, delta-io/delta-rs#2184).
    Its output is flushed first; those commands only read, so nothing else is left to do. The test is "no
    Spark session ran", not "pyspark not imported": MLflow imports pyspark.sql on its own when it is installed."""
    if "pyarrow" in sys.modules and not _spark_started():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _spark_started() -> bool:
    context = sys.modules.get("pyspark.context")
    return context is not None and context.SparkContext._active_spark_context is not None


def entry() -> NoReturn:
    """The `lakehouse` console script."""
    exit_now(main())


if __name__ == "__main__":
    entry()
